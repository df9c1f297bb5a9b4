package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/sqlite"
)

// BenchmarkDeliveryLife measures the store's share of one delivery: the
// publish that creates it (ten events per write, as busy publishers share
// a transaction), the claim that leases it and the completion that records
// its attempt. Synchronous NORMAL keeps the disk's flush out of the number,
// so it shows SQLite's work alone. One op is one delivery.
func BenchmarkDeliveryLife(b *testing.B) { benchmarkDeliveryLife(b, false) }

// BenchmarkDeliveryLifeSingles is BenchmarkDeliveryLife with each event
// published on its own, by ten publishers at once: as a burst of
// single-event requests publishes.
func BenchmarkDeliveryLifeSingles(b *testing.B) { benchmarkDeliveryLife(b, true) }

func benchmarkDeliveryLife(b *testing.B, singles bool) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{Synchronous: "NORMAL", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	ch := sqlite.MakeChannel(b, s, now, 64)
	data := json.RawMessage(`{"order":{"id":"1001","note":"` + strings.Repeat("x", 900) + `"}}`)
	const per = 10
	// A busy channel has requests in flight while it claims more: lease
	// all but per of its 64 slots for the whole run.
	held := make([]herald.Publication, ch.MaxInFlight-per)
	for i := range held {
		held[i] = herald.Publication{Event: herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "t", Type: "order.completed",
			Source: "shop", OccurredAt: now, Data: data, CreatedAt: now}, ChannelIDs: []string{ch.ID}}
	}
	if _, err := s.Publish(ctx, held); err != nil {
		b.Fatal(err)
	}
	if claims, err := s.ClaimDeliveries(ctx, herald.ClaimParams{Now: now.Add(time.Second), Limit: len(held), LeaseSlack: time.Hour}); err != nil || len(claims) != len(held) {
		b.Fatalf("claimed %d: %v", len(claims), err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += per {
		// Ids follow the clock, as in a running Herald: with one fixed time
		// their random parts would scatter inserts over every index.
		now := time.Now().UTC()
		pubs := make([]herald.Publication, per)
		for i := range pubs {
			pubs[i] = herald.Publication{Event: herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "t", Type: "order.completed",
				Source: "shop", OccurredAt: now, Data: data, CreatedAt: now}, ChannelIDs: []string{ch.ID}}
		}
		if err := publish(ctx, s, pubs, singles); err != nil {
			b.Fatal(err)
		}
		claims, err := s.ClaimDeliveries(ctx, herald.ClaimParams{Now: now.Add(time.Second), Limit: per, LeaseSlack: 30 * time.Second})
		if err != nil || len(claims) != per {
			b.Fatalf("claimed %d: %v", len(claims), err)
		}
		cs := make([]herald.Completion, len(claims))
		for i, c := range claims {
			d := c.Delivery
			d.Status, d.Attempts, d.NextAttemptAt, d.LastStatus, d.UpdatedAt = herald.StatusSucceeded, 1, nil, 204, now
			cs[i] = herald.Completion{Delivery: d, Attempt: herald.Attempt{ID: herald.NewID(herald.PrefixAttempt, now), DeliveryID: d.ID,
				TenantID: "t", Number: 1, StartedAt: now, DurationMS: 1, StatusCode: 204, Trigger: herald.TriggerAuto}}
		}
		if err := s.CompleteDeliveries(ctx, cs); err != nil {
			b.Fatal(err)
		}
	}
}

// publish stores pubs in one call, or with singles each in its own, all
// at once.
func publish(ctx context.Context, s *sqlite.Store, pubs []herald.Publication, singles bool) error {
	if !singles {
		_, err := s.Publish(ctx, pubs)
		return err
	}
	errs := make(chan error, len(pubs))
	for i := range pubs {
		go func() {
			_, err := s.Publish(ctx, pubs[i:i+1])
			errs <- err
		}()
	}
	var err error
	for range pubs {
		err = errors.Join(err, <-errs)
	}
	return err
}
