package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/server"
	"github.com/heraldhq/herald/webhooks"
)

const adminKey = "client-test-admin-key-0123"

// TestClientAgainstRealServer drives a whole flow through the client
// against a real Herald and a real receiver.
func TestClientAgainstRealServer(t *testing.T) {
	ctx := context.Background()
	srv, stop, err := server.Start(ctx, server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), AdminKey: adminKey,
		AllowedTargetCIDRs: "127.0.0.0/8", PollInterval: 20 * time.Millisecond, Synchronous: "NORMAL"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	got := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer rc.Close()

	base := "http://" + srv.Addr()
	op := client.New(base, adminKey)
	tenant, err := op.CreateTenant(ctx, "shop1", "Shop One")
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(base, tenant.APIKey)
	url := rc.URL + "/hook"
	ch, err := c.CreateChannel(ctx, "shop1", client.ChannelInput{Name: ptr("crm"), URL: &url, Policy: "postback"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Policy.Name != herald.PolicyPostback || ch.Secret == "" {
		t.Fatalf("channel %+v", ch)
	}
	if _, err := c.CreateSubscription(ctx, "shop1", client.SubscriptionInput{ChannelID: ch.ID, EventTypes: []string{"order.*"}}); err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"order": map[string]any{"id": "1001", "state": "complete", "buyer_email": "jane@example.com"}}
	res, err := c.Publish(ctx, "shop1", client.Event{Type: "order.completed", Source: "shop", Data: data}, client.WithIdempotencyKey("o-1001"))
	if err != nil || res.Deliveries != 1 || res.Replayed {
		t.Fatalf("publish: %+v %v", res, err)
	}
	again, err := c.Publish(ctx, "shop1", client.Event{Type: "order.completed", Source: "shop", Data: data}, client.WithIdempotencyKey("o-1001"))
	if err != nil || !again.Replayed || again.ID != res.ID {
		t.Fatalf("replay: %+v %v", again, err)
	}

	r := <-got
	v, err := webhooks.NewVerifier(ch.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(<-bodies, r.Header); err != nil {
		t.Fatalf("signature: %v", err)
	}

	var detail *client.DeliveryDetail
	for deadline := time.Now().Add(5 * time.Second); ; {
		page, err := c.ListDeliveries(ctx, "shop1", client.DeliveryQuery{EventID: res.ID})
		if err != nil || len(page.Data) != 1 {
			t.Fatalf("list: %+v %v", page, err)
		}
		if detail, err = c.GetDelivery(ctx, "shop1", page.Data[0].ID); err != nil {
			t.Fatal(err)
		}
		if detail.Status == herald.StatusSucceeded || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if detail.Status != herald.StatusSucceeded || len(detail.AttemptLog) != 1 {
		t.Fatalf("delivery %+v", detail)
	}
	retry, err := c.RetryDelivery(ctx, "shop1", detail.ID)
	if err != nil || retry.Attempt.Trigger != herald.TriggerManual || retry.Delivery.Attempts != 2 {
		t.Fatalf("retry: %+v %v", retry, err)
	}
	<-got
	<-bodies

	// API errors come back as *client.Error naming the field.
	_, err = c.Publish(ctx, "shop1", client.Event{Type: "no.such_type", Data: map[string]any{}})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || apiErr.Errors[0].Field != "type" {
		t.Fatalf("unknown type: %v", err)
	}
	_, err = c.GetEvent(ctx, "other-tenant", res.ID)
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("other tenant: %v", err)
	}
	evs, err := c.ListEvents(ctx, "shop1", client.EventQuery{Type: "order.completed"})
	if err != nil || len(evs.Data) != 1 || evs.NextCursor != nil {
		t.Fatalf("events: %+v %v", evs, err)
	}
}

func ptr[T any](v T) *T { return &v }
