package server_test

import (
	"net/http"
	"sort"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestFanOutSignedDelivery publishes one event to three channels and checks
// each receiver got the same Standard Webhooks request, verified by the
// independent reference library with that channel's secret.
func TestFanOutSignedDelivery(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	type target struct {
		rc     *receiver
		id     string
		secret string
	}
	var targets []target
	for range 3 {
		rc := newReceiver(t, nil)
		id, secret := h.channel(tid, key, rc.URL+"/hook", nil)
		h.subscribe(tid, key, id, []string{"payment.succeeded"}, nil, "")
		targets = append(targets, target{rc, id, secret})
	}
	data := h.example("payment.succeeded")
	ans := h.publish(tid, key, "payment.succeeded", "shop", data)
	if ans["deliveries"].(float64) != 3 {
		t.Fatalf("publish answered %v, want 3 deliveries", ans)
	}
	evtID := ans["id"].(string)
	for _, tg := range targets {
		got := tg.rc.waitN(t, 1)[0]
		if id := got.Header.Get("webhook-id"); id != evtID {
			t.Errorf("webhook-id %q, want the event id %q", id, evtID)
		}
		wh, err := standardwebhooks.NewWebhook(tg.secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(got.Body, got.Header); err != nil {
			t.Errorf("reference verifier rejects Herald's request: %v", err)
		}
		p := got.payload()
		if p["id"] != evtID || p["type"] != "payment.succeeded" || p["source"] != "shop" {
			t.Errorf("payload envelope %v", p)
		}
		if p["data"].(map[string]any)["payment_id"] != data["payment_id"] {
			t.Errorf("payload data changed: %v", p["data"])
		}
		if _, err := time.Parse(time.RFC3339Nano, p["timestamp"].(string)); err != nil {
			t.Errorf("timestamp %v: %v", p["timestamp"], err)
		}
		if ct := got.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	ds := h.deliveries(tid, key, "event_id="+evtID)
	if len(ds) != 3 {
		t.Fatalf("%d deliveries listed, want 3", len(ds))
	}
	for _, d := range ds {
		h.waitStatus(tid, key, d["id"].(string), "succeeded", 1)
	}
}

// TestOneDeliveryPerChannel: two subscriptions of one channel that both
// match give one delivery, not two.
func TestOneDeliveryPerChannel(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"payment.*"}, nil, "")
	h.subscribe(tid, key, ch, []string{"payment.succeeded"}, []string{"shop"}, "")
	ans := h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))
	if ans["deliveries"].(float64) != 1 {
		t.Fatalf("got %v deliveries, want 1", ans["deliveries"])
	}
	rc.waitN(t, 1)
	rc.quiet(t, 1, 200*time.Millisecond)
}

// TestTypeSourceAndFilterRouting checks which channels each event reaches.
func TestTypeSourceAndFilterRouting(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	all := newReceiver(t, nil)      // "*"
	payments := newReceiver(t, nil) // payment.*
	shopOnly := newReceiver(t, nil) // payment.succeeded from shop or funnel
	big := newReceiver(t, nil)      // payment.succeeded with total >= 5000, not admin
	for _, s := range []struct {
		rc      *receiver
		types   []string
		sources []string
		filter  string
	}{
		{all, []string{"*"}, nil, ""},
		{payments, []string{"payment.*"}, nil, ""},
		{shopOnly, []string{"payment.succeeded"}, []string{"shop", "funnel"}, ""},
		{big, []string{"payment.succeeded"}, nil, `data.total_amount >= 5000 && source != "admin"`},
	} {
		id, _ := h.channel(tid, key, s.rc.URL, nil)
		h.subscribe(tid, key, id, s.types, s.sources, s.filter)
	}
	small := h.example("payment.succeeded")
	small["total_amount"] = 400
	large := h.example("payment.succeeded")
	large["total_amount"] = 9000

	cases := []struct {
		typ, source string
		data        map[string]any
		want        int
	}{
		{"payment.succeeded", "shop", small, 3},   // all, payments, shopOnly
		{"payment.succeeded", "admin", large, 2},  // all, payments (big excludes admin)
		{"payment.succeeded", "funnel", large, 4}, // everyone
		{"refund.succeeded", "shop", h.example("refund.succeeded"), 1},
	}
	for _, c := range cases {
		ans := h.publish(tid, key, c.typ, c.source, c.data)
		if got := int(ans["deliveries"].(float64)); got != c.want {
			t.Errorf("%s from %s (total %v): %d deliveries, want %d", c.typ, c.source, c.data["total_amount"], got, c.want)
		}
	}
	all.waitN(t, 4)
	payments.waitN(t, 3)
	shopOnly.waitN(t, 2)
	big.waitN(t, 1)
	if src := big.requests()[0].payload()["source"]; src != "funnel" {
		t.Errorf("filtered channel got the event from %v, want funnel", src)
	}
	time.Sleep(150 * time.Millisecond)
	counts := []int{len(all.requests()), len(payments.requests()), len(shopOnly.requests()), len(big.requests())}
	if want := []int{4, 3, 2, 1}; !equalInts(counts, want) {
		t.Errorf("receivers got %v, want %v", counts, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestToggleSuppressesDelivery: a disabled type is stored but not delivered,
// and turning it back on affects new publishes only.
func TestToggleSuppressesDelivery(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.*", "payment.*"}, nil, "")

	et := h.must(200, "PATCH", "/v1/tenants/acme/event-types/payment.succeeded", key, map[string]any{"enabled": false})
	if et["enabled"] != false {
		t.Fatalf("toggle answered %v", et)
	}
	types := h.must(200, "GET", "/v1/tenants/acme/event-types", key, nil)["data"].([]any)
	for _, raw := range types {
		m := raw.(map[string]any)
		if want := m["name"] != "payment.succeeded"; m["enabled"] != want {
			t.Errorf("%s enabled=%v, want %v", m["name"], m["enabled"], want)
		}
	}
	ans := h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))
	if ans["suppressed"] != true || ans["deliveries"].(float64) != 0 {
		t.Fatalf("publish of a disabled type answered %v, want suppressed with 0 deliveries", ans)
	}
	// Stored all the same.
	h.must(200, "GET", "/v1/tenants/acme/events/"+ans["id"].(string), key, nil)

	h.must(200, "PATCH", "/v1/tenants/acme/event-types/payment.succeeded", key, map[string]any{"enabled": true})
	ans2 := h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))
	if ans2["deliveries"].(float64) != 1 {
		t.Fatalf("after re-enabling: %v", ans2)
	}
	got := rc.waitN(t, 1)
	rc.quiet(t, 1, 150*time.Millisecond)
	if got[0].Header.Get("webhook-id") != ans2["id"] {
		t.Errorf("delivered %s, want only the event published after re-enabling", got[0].Header.Get("webhook-id"))
	}
}

// TestIdempotentPublish: the same key and body answer 200 with the original
// id and deliver once; a different body under the same key is 422.
func TestIdempotentPublish(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"*"}, nil, "")
	data := h.example("order.completed")
	first := h.publish(tid, key, "order.completed", "shop", data, "Idempotency-Key", "order-1001")
	again := h.call("POST", "/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "source": "shop", "data": data},
		"Idempotency-Key", "order-1001")
	if again.Status != http.StatusOK || again.JSON()["id"] != first["id"] {
		t.Fatalf("replay answered %s, want 200 with id %v", again, first["id"])
	}
	other := h.call("POST", "/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "source": "admin", "data": data},
		"Idempotency-Key", "order-1001")
	if other.Status != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other body: %s, want 422", other)
	}
	rc.waitN(t, 1)
	rc.quiet(t, 1, 200*time.Millisecond)

	// Keys are per tenant: another tenant may use the same key.
	t2, key2 := h.tenant("other")
	h.publish(t2, key2, "order.completed", "shop", data, "Idempotency-Key", "order-1001")

	// Keys expire after 24 hours.
	h.clock.Advance(25 * time.Hour)
	later := h.publish(tid, key, "order.completed", "shop", data, "Idempotency-Key", "order-1001")
	if later["id"] == first["id"] {
		t.Fatal("key still remembered after 24 h")
	}
}

// TestBatchPublish: a batch is all-or-nothing and names each bad item.
func TestBatchPublish(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"*"}, nil, "")
	good := map[string]any{"type": "refund.succeeded", "source": "shop", "data": h.example("refund.succeeded")}
	bad := h.call("POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": []any{
		good,
		map[string]any{"type": "nope.nothing", "data": map[string]any{}},
		good,
		map[string]any{"type": "refund.succeeded", "data": "not an object"},
	}})
	if bad.Status != 422 {
		t.Fatalf("bad batch: %s", bad)
	}
	var fields []string
	for _, e := range bad.JSON()["errors"].([]any) {
		fields = append(fields, e.(map[string]any)["field"].(string))
	}
	sort.Strings(fields)
	if len(fields) != 2 || fields[0] != "events[1].type" || fields[1] != "events[3].data" {
		t.Fatalf("errors name %v, want events[1].type and events[3].data", fields)
	}
	if evs := h.must(200, "GET", "/v1/tenants/acme/events", key, nil)["data"].([]any); len(evs) != 0 {
		t.Fatalf("a rejected batch stored %d events", len(evs))
	}

	items := make([]any, 50)
	for i := range items {
		items[i] = good
	}
	ok := h.must(202, "POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": items})
	if n := len(ok["events"].([]any)); n != 50 {
		t.Fatalf("batch answered %d events", n)
	}
	rc.waitN(t, 50)
	tooMany := make([]any, 1001)
	for i := range tooMany {
		tooMany[i] = good
	}
	if r := h.call("POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": tooMany}); r.Status != 422 {
		t.Fatalf("1001 events: %s", r)
	}
}
