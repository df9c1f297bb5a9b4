// Package storetest is the conformance suite every herald.Store passes. A
// store package's test calls Run with a function that opens an empty store;
// each subtest gets its own.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// Opener returns a fresh, empty store; the suite closes it.
type Opener func(t *testing.T) herald.Store

// Run runs every conformance test against stores from open. local says the
// store is used by one process only (SQLite), so it takes deliveries
// handed off at publish and a dispatcher's own busy counts; a shared store
// must refuse both.
func Run(t *testing.T, open Opener, local bool) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"Tenants", testTenants},
		{"APIKeys", testAPIKeys},
		{"EventTypesAndToggles", testEventTypes},
		{"Channels", testChannels},
		{"ActionChannels", testActionChannels},
		{"SubscriptionsAndRoutes", testSubscriptions},
		{"Publish", testPublish},
		{"Idempotency", testIdempotency},
		{"BatchIsAtomic", testBatchAtomic},
		{"ClaimLeasesAndLimits", testClaims},
		{"BusyChannelDoesNotStarveOthers", testNoStarvation},
		{"DeletedChannelsDeliveriesAreClaimed", testOrphanClaimed},
		{"RateSchedule", testRateSchedule},
		{"CompleteAndDisable", testComplete},
		{"AttemptLog", testAttemptLog},
		{"LeaseForManualAttempt", testLeaseDelivery},
		{"Recover", testRecover},
		{"ListFiltersAndPages", testLists},
		{"TenantScoping", testScoping},
		{"Settings", testSettings},
		{"ConfigVersion", testConfigVersion},
		{"HookChannels", testHookChannels},
		{"HandoffAndBusy", func(t *testing.T, f *fixture) { testHandoff(t, f, local) }},
		{"ClaimQueue", func(t *testing.T, f *fixture) { testClaimQueue(t, f, local) }},
		{"FreeSlotsBeforeQueues", testFreeSlotsFirst},
		{"CompletionsTogether", testCompletionsTogether},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, &fixture{t: t, s: s, ctx: context.Background(), now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)})
		})
	}
}

type fixture struct {
	t   *testing.T
	s   herald.Store
	ctx context.Context
	now time.Time
}

func (f *fixture) tenant(id string) {
	f.t.Helper()
	sum := sha256.Sum256([]byte("key-" + id))
	err := f.s.CreateTenant(f.ctx, &herald.Tenant{ID: id, Name: "T " + id, CreatedAt: f.now},
		&herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, f.now), TenantID: id, Prefix: "hk_" + id, Hash: sum[:], CreatedAt: f.now})
	must(f.t, err)
}

func (f *fixture) channel(tenant string, mods ...func(*herald.Channel)) *herald.Channel {
	f.t.Helper()
	c := &herald.Channel{ID: herald.NewID(herald.PrefixChannel, f.now), TenantID: tenant, Kind: herald.ChannelWebhook, Name: "c",
		URL: "https://example.com/hook", Headers: map[string]string{"X-A": "1"}, Policy: herald.StandardPolicy(), Enabled: true,
		MaxInFlight: 16, Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: f.now, UpdatedAt: f.now}
	for _, m := range mods {
		m(c)
	}
	must(f.t, f.s.CreateChannel(f.ctx, c))
	return c
}

func (f *fixture) sub(tenant, channel string, types ...string) *herald.Subscription {
	f.t.Helper()
	s := &herald.Subscription{ID: herald.NewID(herald.PrefixSubscription, f.now), TenantID: tenant, ChannelID: channel,
		EventTypes: types, Sources: []string{}, CreatedAt: f.now, UpdatedAt: f.now}
	must(f.t, f.s.CreateSubscription(f.ctx, s))
	return s
}

func (f *fixture) event(tenant, typ string) herald.Event {
	return herald.Event{ID: herald.NewID(herald.PrefixEvent, f.now), TenantID: tenant, Type: typ, Source: "shop",
		OccurredAt: f.now, Data: json.RawMessage(`{"n":1}`), CreatedAt: f.now}
}

// publish stores one event for channels and returns its result.
func (f *fixture) publish(tenant, typ string, channels ...string) herald.PublishResult {
	f.t.Helper()
	res, err := f.s.Publish(f.ctx, []herald.Publication{{Event: f.event(tenant, typ), ChannelIDs: channels}})
	must(f.t, err)
	return res[0]
}

func (f *fixture) claim(limit int) []herald.Claim {
	f.t.Helper()
	cs, err := f.s.ClaimDeliveries(f.ctx, herald.ClaimParams{Now: f.now, Limit: limit, LeaseSlack: 30 * time.Second})
	must(f.t, err)
	return cs
}

func (f *fixture) delivery(tenant, id string) *herald.Delivery {
	f.t.Helper()
	d, err := f.s.GetDelivery(f.ctx, tenant, id)
	must(f.t, err)
	return d
}

// complete records an attempt ending the delivery in status.
func (f *fixture) complete(c herald.Claim, status herald.DeliveryStatus, next *time.Time, disable string) {
	f.t.Helper()
	d := c.Delivery
	d.Attempts++
	d.Status, d.NextAttemptAt, d.UpdatedAt = status, next, f.now
	if status != herald.StatusSucceeded {
		d.LastError, d.LastStatus = "receiver answered 500", 500
	}
	att := herald.Attempt{ID: herald.NewID(herald.PrefixAttempt, f.now), DeliveryID: d.ID, TenantID: d.TenantID, Number: d.Attempts,
		StartedAt: f.now, DurationMS: 12, StatusCode: d.LastStatus, Trigger: herald.TriggerAuto}
	must(f.t, f.s.CompleteDeliveries(f.ctx, []herald.Completion{{Delivery: d, Attempt: att, DisableChannel: disable}}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func testTenants(t *testing.T, f *fixture) {
	f.tenant("a")
	f.tenant("b")
	err := f.s.CreateTenant(f.ctx, &herald.Tenant{ID: "a", Name: "dup", CreatedAt: f.now},
		&herald.APIKey{ID: "key_dup", TenantID: "a", Prefix: "x", Hash: []byte("dup"), CreatedAt: f.now})
	wantErr(t, err, herald.ErrConflict)
	got, err := f.s.GetTenant(f.ctx, "a")
	must(t, err)
	if got.Name != "T a" || !got.CreatedAt.Equal(f.now) {
		t.Fatalf("got %+v", got)
	}
	_, err = f.s.GetTenant(f.ctx, "zzz")
	wantErr(t, err, herald.ErrNotFound)
	list, err := f.s.ListTenants(f.ctx, herald.Page{Limit: 1})
	must(t, err)
	if len(list) != 1 || list[0].ID != "b" {
		t.Fatalf("first page %+v, want [b]", list)
	}
	list, err = f.s.ListTenants(f.ctx, herald.Page{After: "b", Limit: 10})
	must(t, err)
	if len(list) != 1 || list[0].ID != "a" {
		t.Fatalf("second page %+v, want [a]", list)
	}
}

func testAPIKeys(t *testing.T, f *fixture) {
	f.tenant("a")
	sum := sha256.Sum256([]byte("key-a"))
	k, err := f.s.APIKeyByHash(f.ctx, sum[:])
	must(t, err)
	if k.TenantID != "a" {
		t.Fatalf("key of %q", k.TenantID)
	}
	sum2 := sha256.Sum256([]byte("second"))
	k2 := &herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, f.now.Add(time.Second)), TenantID: "a", Prefix: "hk_2", Hash: sum2[:], CreatedAt: f.now}
	must(t, f.s.CreateAPIKey(f.ctx, k2))
	keys, err := f.s.ListAPIKeys(f.ctx, "a")
	must(t, err)
	if len(keys) != 2 {
		t.Fatalf("%d keys", len(keys))
	}
	for _, k := range keys {
		if len(k.Hash) != 0 {
			t.Fatal("listed keys carry their hash")
		}
	}
	must(t, f.s.RevokeAPIKey(f.ctx, "a", k2.ID, f.now))
	_, err = f.s.APIKeyByHash(f.ctx, sum2[:])
	wantErr(t, err, herald.ErrNotFound)
	wantErr(t, f.s.RevokeAPIKey(f.ctx, "b", k.ID, f.now), herald.ErrNotFound)
}

func testEventTypes(t *testing.T, f *fixture) {
	f.tenant("a")
	et := &herald.EventType{Name: "invoice.paid", Group: "invoice", Title: "Invoice paid", Description: "d",
		Schema: json.RawMessage(`{"type":"object"}`), Example: json.RawMessage(`{"id":"inv_1"}`)}
	must(t, f.s.CreateEventType(f.ctx, "a", et))
	wantErr(t, f.s.CreateEventType(f.ctx, "a", et), herald.ErrConflict)
	types, err := f.s.ListEventTypes(f.ctx, "a")
	must(t, err)
	if len(types) != 1 || types[0].Name != "invoice.paid" || string(types[0].Example) != `{"id":"inv_1"}` || types[0].Origins[0] != herald.OriginCustom {
		t.Fatalf("%+v", types)
	}
	must(t, f.s.SetEventTypeEnabled(f.ctx, "a", "payment.succeeded", false))
	must(t, f.s.SetEventTypeEnabled(f.ctx, "a", "refund.failed", false))
	must(t, f.s.SetEventTypeEnabled(f.ctx, "a", "refund.failed", true))
	off, err := f.s.DisabledEventTypes(f.ctx, "a")
	must(t, err)
	if len(off) != 1 || off[0] != "payment.succeeded" {
		t.Fatalf("disabled %v", off)
	}
}

func testChannels(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a", func(c *herald.Channel) { c.Policy = herald.PostbackPolicy(); c.RateLimitPerSec = 2.5 })
	got, err := f.s.GetChannel(f.ctx, "a", c.ID)
	must(t, err)
	if got.Policy.Name != herald.PolicyPostback || got.Headers["X-A"] != "1" || got.RateLimitPerSec != 2.5 || got.CurrentSecret() != c.CurrentSecret() {
		t.Fatalf("round trip lost fields: %+v", got)
	}
	// Disabling fails pending deliveries with the reason.
	res := f.publish("a", "x.y", c.ID)
	got.Enabled, got.DisabledReason = false, herald.DisabledManual
	must(t, f.s.UpdateChannel(f.ctx, got))
	d := f.delivery("a", res.DeliveryIDs[0])
	if d.Status != herald.StatusFailed || d.LastError == "" {
		t.Fatalf("pending delivery of a disabled channel: %+v", d)
	}
	// Deleting removes subscriptions and fails pending deliveries.
	c2 := f.channel("a")
	f.sub("a", c2.ID, "*")
	res2 := f.publish("a", "x.y", c2.ID)
	must(t, f.s.DeleteChannel(f.ctx, "a", c2.ID, f.now))
	_, err = f.s.GetChannel(f.ctx, "a", c2.ID)
	wantErr(t, err, herald.ErrNotFound)
	subs, err := f.s.ListSubscriptions(f.ctx, "a", herald.SubscriptionFilter{ChannelID: c2.ID}, herald.Page{Limit: 10})
	must(t, err)
	if len(subs) != 0 {
		t.Fatal("subscriptions of a deleted channel remain")
	}
	if d := f.delivery("a", res2.DeliveryIDs[0]); d.Status != herald.StatusFailed || d.LastError != "channel deleted" {
		t.Fatalf("delivery of a deleted channel: %+v", d)
	}
	wantErr(t, f.s.DeleteChannel(f.ctx, "a", c2.ID, f.now), herald.ErrNotFound)
}

// testActionChannels: an action channel's template and secrets survive a
// round trip and an update; a webhook channel reads back without one.
func testActionChannels(t *testing.T, f *fixture) {
	f.tenant("a")
	act := &herald.Action{Method: "POST", Headers: map[string]string{"Authorization": "Bearer {{ secrets.token }}"},
		Body: json.RawMessage(`{"first_name":"{{ customer().first_name }}","n":1}`), Secrets: map[string]string{"token": "tok-1"},
		Preset: herald.PresetHipcall, Options: map[string]string{"operation": "create_contact"}}
	c := f.channel("a", func(c *herald.Channel) { c.Kind = herald.ChannelAction; c.Action = act })
	got, err := f.s.GetChannel(f.ctx, "a", c.ID)
	must(t, err)
	if got.Kind != herald.ChannelAction || got.Action == nil || !reflect.DeepEqual(got.Action, act) {
		t.Fatalf("action round trip: got %+v, want %+v", got.Action, act)
	}
	got.Action.Secrets["token"] = "tok-2"
	got.Action.Body = json.RawMessage(`{"name":"x"}`)
	must(t, f.s.UpdateChannel(f.ctx, got))
	again, err := f.s.GetChannel(f.ctx, "a", c.ID)
	must(t, err)
	if again.Action.Secrets["token"] != "tok-2" || string(again.Action.Body) != `{"name":"x"}` {
		t.Fatalf("action update lost: %+v", again.Action)
	}
	plain := f.channel("a")
	if got, err := f.s.GetChannel(f.ctx, "a", plain.ID); err != nil || got.Action != nil {
		t.Fatalf("webhook channel read back with an action: %+v, %v", got, err)
	}
}

func testSubscriptions(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a")
	off := f.channel("a", func(c *herald.Channel) { c.Enabled = false; c.DisabledReason = "manual" })
	s := f.sub("a", c.ID, "payment.*")
	f.sub("a", off.ID, "*")
	err := f.s.CreateSubscription(f.ctx, &herald.Subscription{ID: "sub_x", TenantID: "a", ChannelID: "ch_missing", EventTypes: []string{"*"}, CreatedAt: f.now, UpdatedAt: f.now})
	var verr *herald.ValidationError
	if !errors.As(err, &verr) || verr.Fields[0].Field != "channel_id" {
		t.Fatalf("subscription to a missing channel: %v", err)
	}
	s.Sources, s.Filter = []string{"shop"}, `data.n > 0`
	must(t, f.s.UpdateSubscription(f.ctx, s))
	got, err := f.s.GetSubscription(f.ctx, "a", s.ID)
	must(t, err)
	if len(got.Sources) != 1 || got.Filter != `data.n > 0` || got.EventTypes[0] != "payment.*" {
		t.Fatalf("%+v", got)
	}
	must(t, f.s.SetEventTypeEnabled(f.ctx, "a", "payment.failed", false))
	r, err := f.s.Routes(f.ctx, "a")
	must(t, err)
	if len(r.Subscriptions) != 1 || r.Subscriptions[0].ID != s.ID {
		t.Fatalf("routes hold %+v, want only the enabled channel's subscription", r.Subscriptions)
	}
	if !r.DisabledTypes["payment.failed"] {
		t.Fatal("routes miss the disabled type")
	}
	must(t, f.s.DeleteSubscription(f.ctx, "a", s.ID))
	wantErr(t, f.s.DeleteSubscription(f.ctx, "a", s.ID), herald.ErrNotFound)
}

func testPublish(t *testing.T, f *fixture) {
	f.tenant("a")
	c1, c2 := f.channel("a"), f.channel("a")
	res := f.publish("a", "order.completed", c1.ID, c2.ID)
	if res.Deliveries != 2 || len(res.DeliveryIDs) != 2 {
		t.Fatalf("%+v", res)
	}
	e, err := f.s.GetEvent(f.ctx, "a", res.EventID)
	must(t, err)
	if e.Type != "order.completed" || string(e.Data) != `{"n":1}` || !e.OccurredAt.Equal(f.now) {
		t.Fatalf("%+v", e)
	}
	d := f.delivery("a", res.DeliveryIDs[0])
	if d.Status != herald.StatusPending || d.EventID != e.ID || d.EventType != e.Type || d.Attempts != 0 {
		t.Fatalf("%+v", d)
	}
	sup, err := f.s.Publish(f.ctx, []herald.Publication{{Event: f.event("a", "x.y"), ChannelIDs: []string{c1.ID}, Suppressed: true}})
	must(t, err)
	if sup[0].Deliveries != 0 || !sup[0].Suppressed {
		t.Fatalf("suppressed: %+v", sup[0])
	}
	if _, err := f.s.GetEvent(f.ctx, "a", sup[0].EventID); err != nil {
		t.Fatal("a suppressed event must still be stored")
	}
}

func testIdempotency(t *testing.T, f *fixture) {
	f.tenant("a")
	f.tenant("b")
	c := f.channel("a")
	pub := func(tenant string, hash string, at time.Time) herald.PublishResult {
		e := f.event(tenant, "x.y")
		e.IdempotencyKey, e.CreatedAt = "k1", at
		res, err := f.s.Publish(f.ctx, []herald.Publication{{Event: e, ChannelIDs: []string{c.ID}, RequestHash: []byte(hash), IdempotencyTTL: 24 * time.Hour}})
		must(t, err)
		return res[0]
	}
	first := pub("a", "h1", f.now)
	again := pub("a", "h1", f.now.Add(time.Hour))
	if !again.Replayed || again.EventID != first.EventID || again.Deliveries != 1 {
		t.Fatalf("replay: %+v", again)
	}
	if other := pub("a", "h2", f.now.Add(time.Hour)); !other.KeyMismatch {
		t.Fatalf("other body: %+v", other)
	}
	if b := pub("b", "h1", f.now); b.Replayed || b.EventID == first.EventID {
		t.Fatal("idempotency keys leak across tenants")
	}
	if late := pub("a", "h2", f.now.Add(25*time.Hour)); late.Replayed || late.KeyMismatch || late.EventID == first.EventID {
		t.Fatalf("expired key: %+v", late)
	}
	list, err := f.s.ListEvents(f.ctx, "a", herald.EventFilter{}, herald.Page{Limit: 10})
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("%d events stored, want 2 (original and after expiry)", len(list))
	}
}

func testBatchAtomic(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a")
	e0 := f.event("a", "x.y")
	e0.IdempotencyKey = "dup"
	_, err := f.s.Publish(f.ctx, []herald.Publication{{Event: e0, ChannelIDs: []string{c.ID}, RequestHash: []byte("one"), IdempotencyTTL: time.Hour}})
	must(t, err)
	e1, e2 := f.event("a", "x.y"), f.event("a", "x.y")
	e2.IdempotencyKey = "dup"
	_, err = f.s.Publish(f.ctx, []herald.Publication{
		{Event: e1, ChannelIDs: []string{c.ID}},
		{Event: e2, ChannelIDs: []string{c.ID}, RequestHash: []byte("other"), IdempotencyTTL: time.Hour},
	})
	var verr *herald.ValidationError
	if !errors.As(err, &verr) || verr.Fields[0].Field != "events[1].idempotency_key" {
		t.Fatalf("batch with a reused key: %v", err)
	}
	if _, err := f.s.GetEvent(f.ctx, "a", e1.ID); !errors.Is(err, herald.ErrNotFound) {
		t.Fatal("the batch's first event was stored although the batch failed")
	}
	// Without keys too (a write with nothing to read first): the second
	// event reuses a stored event's id, the database refuses it, and the
	// first is not stored either.
	e3, e4 := f.event("a", "x.y"), f.event("a", "x.y")
	e4.ID = e0.ID
	if _, err := f.s.Publish(f.ctx, []herald.Publication{{Event: e3, ChannelIDs: []string{c.ID}}, {Event: e4, ChannelIDs: []string{c.ID}}}); err == nil {
		t.Fatal("a batch reusing a stored event's id was taken")
	}
	if _, err := f.s.GetEvent(f.ctx, "a", e3.ID); !errors.Is(err, herald.ErrNotFound) {
		t.Fatal("the keyless batch's first event was stored although the batch failed")
	}
}

func testClaims(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a", func(c *herald.Channel) { c.MaxInFlight = 2 })
	other := f.channel("a")
	for range 5 {
		f.publish("a", "x.y", c.ID)
	}
	f.publish("a", "x.y", other.ID)
	cs := f.claim(100)
	perChannel := map[string]int{}
	for _, cl := range cs {
		perChannel[cl.Delivery.ChannelID]++
		if cl.Channel == nil || cl.Event.ID != cl.Delivery.EventID || string(cl.Event.Data) != `{"n":1}` {
			t.Fatalf("claim without its channel or event: %+v", cl)
		}
	}
	if perChannel[c.ID] != 2 || perChannel[other.ID] != 1 {
		t.Fatalf("claimed %v, want 2 of the limited channel and 1 of the other", perChannel)
	}
	if again := f.claim(100); len(again) != 0 {
		t.Fatalf("leased deliveries claimed again: %d", len(again))
	}
	// Finishing one frees one slot.
	f.complete(cs[0], herald.StatusSucceeded, nil, "")
	if cs[0].Delivery.ChannelID == c.ID {
		if next := f.claim(100); len(next) != 1 || next[0].Delivery.ChannelID != c.ID {
			t.Fatalf("after one completion claimed %d", len(next))
		}
	}
	// Released deliveries are due again at once.
	var ids []string
	for _, cl := range cs[1:] {
		ids = append(ids, cl.Delivery.ID)
	}
	must(t, f.s.ReleaseDeliveries(f.ctx, ids))
	if again := f.claim(100); len(again) != len(ids) {
		t.Fatalf("after releasing %d deliveries a claim got %d", len(ids), len(again))
	}
	// Not yet due deliveries are not claimed; expired leases are.
	future := f.now.Add(time.Hour)
	res := f.publish("a", "x.y", other.ID)
	cl := claimOne(t, f, res.DeliveryIDs[0])
	f.complete(cl, herald.StatusPending, &future, "")
	for _, x := range f.claim(100) {
		if x.Delivery.ID == res.DeliveryIDs[0] {
			t.Fatal("claimed a delivery before its next attempt")
		}
	}
	f.now = f.now.Add(2 * time.Hour) // every lease has expired too
	found := false
	for _, x := range f.claim(100) {
		found = found || x.Delivery.ID == res.DeliveryIDs[0]
	}
	if !found {
		t.Fatal("a due delivery was not claimed")
	}
}

// claimOne claims until it holds delivery id.
func claimOne(t *testing.T, f *fixture, id string) herald.Claim {
	t.Helper()
	for range 10 {
		for _, c := range f.claim(100) {
			if c.Delivery.ID == id {
				return c
			}
		}
	}
	t.Fatalf("delivery %s never claimed", id)
	return herald.Claim{}
}

// testAttemptLog: every attempt a delivery records is listed whole and in
// order, including a first attempt recorded twice (sent again after its
// lease ran out) and one recorded by hand.
func testAttemptLog(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a")
	r := f.publish("a", "x.y", c.ID)
	cl := claimOne(t, f, r.DeliveryIDs[0])
	record := func(d herald.Delivery, a herald.Attempt) {
		t.Helper()
		d.Attempts, d.LastStatus, d.LastError, d.UpdatedAt = a.Number, a.StatusCode, a.Error, a.StartedAt
		must(t, f.s.CompleteDeliveries(f.ctx, []herald.Completion{{Delivery: d, Attempt: a}}))
	}
	d := cl.Delivery
	d.Status = herald.StatusPending
	next := f.now.Add(5 * time.Second)
	d.NextAttemptAt = &next
	want := []herald.Attempt{
		{Number: 1, DurationMS: 30000, ErrorClass: herald.ErrClassTimeout, Error: "no answer in 30 s", Trigger: herald.TriggerAuto},
		{Number: 1, DurationMS: 8, StatusCode: 503, ResponseBody: "busy", ErrorClass: herald.ErrClassStatus, Error: "receiver answered 503", Trigger: herald.TriggerAuto},
		{Number: 2, DurationMS: 9, StatusCode: 200, ResponseBody: `{"ok":true}`, Trigger: herald.TriggerAuto},
		{Number: 3, DurationMS: 7, StatusCode: 204, Trigger: herald.TriggerManual},
	}
	for i := range want {
		a := &want[i]
		started := f.now.Add(time.Duration(i) * time.Second)
		a.ID, a.DeliveryID, a.TenantID, a.StartedAt = herald.NewID(herald.PrefixAttempt, started), d.ID, "a", started
		if a.Number == 2 {
			d.Status, d.NextAttemptAt = herald.StatusSucceeded, nil
		}
		record(d, *a)
	}
	got, err := f.s.ListAttempts(f.ctx, "a", d.ID)
	must(t, err)
	if len(got) != len(want) {
		t.Fatalf("listed %d attempts, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.StartedAt.Equal(w.StartedAt) {
			t.Errorf("attempt %d started at %v, want %v", i, g.StartedAt, w.StartedAt)
		}
		g.StartedAt = w.StartedAt
		if !reflect.DeepEqual(g, w) {
			t.Errorf("attempt %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if got := f.delivery("a", d.ID); got.Status != herald.StatusSucceeded || got.Attempts != 3 || got.LastStatus != 204 {
		t.Errorf("delivery after its attempts: %+v", got)
	}
	// Another tenant sees none of them.
	if got, err := f.s.ListAttempts(f.ctx, "b", d.ID); err != nil || len(got) != 0 {
		t.Errorf("another tenant listed %d attempts (%v)", len(got), err)
	}
}

func testComplete(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a")
	r1, r2 := f.publish("a", "x.y", c.ID), f.publish("a", "x.y", c.ID)
	cl := claimOne(t, f, r1.DeliveryIDs[0])
	next := f.now.Add(5 * time.Second)
	f.complete(cl, herald.StatusPending, &next, "")
	d := f.delivery("a", cl.Delivery.ID)
	if d.Status != herald.StatusPending || d.Attempts != 1 || !d.NextAttemptAt.Equal(next) || d.LastStatus != 500 {
		t.Fatalf("%+v", d)
	}
	atts, err := f.s.ListAttempts(f.ctx, "a", d.ID)
	must(t, err)
	if len(atts) != 1 || atts[0].StatusCode != 500 || atts[0].DurationMS != 12 || atts[0].Number != 1 {
		t.Fatalf("%+v", atts)
	}
	// A 410 disables the channel and fails its other pending deliveries.
	f.now = next
	cl = claimOne(t, f, r1.DeliveryIDs[0])
	must(t, f.s.ReleaseDeliveries(f.ctx, []string{r2.DeliveryIDs[0]}))
	f.complete(cl, herald.StatusFailed, nil, herald.DisabledGone)
	ch, err := f.s.GetChannel(f.ctx, "a", c.ID)
	must(t, err)
	if ch.Enabled || ch.DisabledReason != herald.DisabledGone {
		t.Fatalf("channel after 410: %+v", ch)
	}
	if d := f.delivery("a", r2.DeliveryIDs[0]); d.Status != herald.StatusFailed {
		t.Fatalf("other pending delivery: %+v", d)
	}
}

func testLeaseDelivery(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a")
	r := f.publish("a", "x.y", c.ID)
	_, err := f.s.LeaseDelivery(f.ctx, "a", r.DeliveryIDs[0], f.now, f.now.Add(time.Minute))
	wantErr(t, err, herald.ErrConflict) // still pending
	f.complete(claimOne(t, f, r.DeliveryIDs[0]), herald.StatusFailed, nil, "")
	cl, err := f.s.LeaseDelivery(f.ctx, "a", r.DeliveryIDs[0], f.now, f.now.Add(time.Minute))
	must(t, err)
	if cl.Channel == nil || cl.Event.ID != r.EventID {
		t.Fatalf("%+v", cl)
	}
	_, err = f.s.LeaseDelivery(f.ctx, "a", r.DeliveryIDs[0], f.now, f.now.Add(time.Minute))
	wantErr(t, err, herald.ErrConflict) // attempt in progress
	if len(f.claim(100)) != 0 {
		t.Fatal("a manually leased delivery was claimed by the dispatcher")
	}
	_, err = f.s.LeaseDelivery(f.ctx, "b", r.DeliveryIDs[0], f.now, f.now.Add(time.Minute))
	wantErr(t, err, herald.ErrNotFound)

	// A channel test whose process died mid-attempt: once the lease has
	// passed it can be retried by hand, and it is never stuck pending.
	until := f.now.Add(time.Minute)
	res, err := f.s.Publish(f.ctx, []herald.Publication{{Event: f.event("a", "x.y"), ChannelIDs: []string{c.ID}, LeaseUntil: &until}})
	must(t, err)
	test := res[0].DeliveryIDs[0]
	_, err = f.s.LeaseDelivery(f.ctx, "a", test, f.now, f.now.Add(time.Minute))
	wantErr(t, err, herald.ErrConflict)
	f.now = until.Add(time.Second)
	f.claim(100) // a claim after the lease may end it as failed
	if d := f.delivery("a", test); d.Status == herald.StatusPending && d.NextAttemptAt != nil {
		t.Fatalf("interrupted test delivery scheduled automatically: %+v", d)
	}
	if _, err := f.s.LeaseDelivery(f.ctx, "a", test, f.now, f.now.Add(time.Minute)); err != nil {
		t.Fatalf("retrying an interrupted manual attempt: %v", err)
	}
}

func testRecover(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a")
	old := f.publish("a", "x.y", c.ID)
	f.complete(claimOne(t, f, old.DeliveryIDs[0]), herald.StatusFailed, nil, "")
	since := f.now.Add(time.Minute)
	f.now = since.Add(time.Minute)
	recent := f.publish("a", "x.y", c.ID)
	f.complete(claimOne(t, f, recent.DeliveryIDs[0]), herald.StatusFailed, nil, "")
	n, err := f.s.RecoverDeliveries(f.ctx, "a", c.ID, since, f.now)
	must(t, err)
	if n != 1 {
		t.Fatalf("recovered %d, want 1", n)
	}
	d := f.delivery("a", recent.DeliveryIDs[0])
	if d.Status != herald.StatusPending || d.RetryBase != 1 {
		t.Fatalf("recovered delivery %+v, want pending with the policy restarted", d)
	}
	if f.delivery("a", old.DeliveryIDs[0]).Status != herald.StatusFailed {
		t.Fatal("a delivery before since was recovered")
	}
	ch, _ := f.s.GetChannel(f.ctx, "a", c.ID)
	ch.Enabled = false
	must(t, f.s.UpdateChannel(f.ctx, ch))
	_, err = f.s.RecoverDeliveries(f.ctx, "a", c.ID, since, f.now)
	wantErr(t, err, herald.ErrConflict)
}

func testLists(t *testing.T, f *fixture) {
	f.tenant("a")
	c1, c2 := f.channel("a"), f.channel("a")
	var ids []string
	for i := range 5 {
		f.now = f.now.Add(time.Second)
		typ := "a.b"
		if i%2 == 1 {
			typ = "c.d"
		}
		r := f.publish("a", typ, c1.ID, c2.ID)
		ids = append(ids, r.EventID)
	}
	evs, err := f.s.ListEvents(f.ctx, "a", herald.EventFilter{Type: "c.d"}, herald.Page{Limit: 10})
	must(t, err)
	if len(evs) != 2 || evs[0].ID != ids[3] {
		t.Fatalf("events by type: %d, newest %v", len(evs), evs)
	}
	page1, err := f.s.ListDeliveries(f.ctx, "a", herald.DeliveryFilter{ChannelID: c1.ID}, herald.Page{Limit: 3})
	must(t, err)
	page2, err := f.s.ListDeliveries(f.ctx, "a", herald.DeliveryFilter{ChannelID: c1.ID}, herald.Page{After: page1[2].ID, Limit: 3})
	must(t, err)
	if len(page1) != 3 || len(page2) != 2 || page1[0].EventID != ids[4] {
		t.Fatalf("pages of %d and %d", len(page1), len(page2))
	}
	seen := map[string]bool{}
	for _, d := range append(page1, page2...) {
		if seen[d.ID] || d.ChannelID != c1.ID {
			t.Fatal("pages overlap or leak another channel")
		}
		seen[d.ID] = true
	}
	byEvent, err := f.s.ListDeliveries(f.ctx, "a", herald.DeliveryFilter{EventID: ids[0]}, herald.Page{Limit: 10})
	must(t, err)
	byType, err := f.s.ListDeliveries(f.ctx, "a", herald.DeliveryFilter{EventType: "c.d", Status: herald.StatusPending}, herald.Page{Limit: 10})
	must(t, err)
	window, err := f.s.ListDeliveries(f.ctx, "a", herald.DeliveryFilter{Since: f.now.Add(-1500 * time.Millisecond), Until: f.now.Add(time.Millisecond)}, herald.Page{Limit: 10})
	must(t, err)
	if len(byEvent) != 2 || len(byType) != 4 || len(window) != 4 {
		t.Fatalf("by event %d (2), by type %d (4), in window %d (4)", len(byEvent), len(byType), len(window))
	}
	failed, err := f.s.ListDeliveries(f.ctx, "a", herald.DeliveryFilter{Status: herald.StatusFailed}, herald.Page{Limit: 10})
	must(t, err)
	if len(failed) != 0 {
		t.Fatal("status filter ignored")
	}
}

func testScoping(t *testing.T, f *fixture) {
	f.tenant("a")
	f.tenant("b")
	c := f.channel("a")
	s := f.sub("a", c.ID, "*")
	r := f.publish("a", "x.y", c.ID)
	checks := map[string]error{}
	_, checks["channel"] = f.s.GetChannel(f.ctx, "b", c.ID)
	_, checks["subscription"] = f.s.GetSubscription(f.ctx, "b", s.ID)
	_, checks["event"] = f.s.GetEvent(f.ctx, "b", r.EventID)
	_, checks["delivery"] = f.s.GetDelivery(f.ctx, "b", r.DeliveryIDs[0])
	checks["delete channel"] = f.s.DeleteChannel(f.ctx, "b", c.ID, f.now)
	checks["delete subscription"] = f.s.DeleteSubscription(f.ctx, "b", s.ID)
	for what, err := range checks {
		if !errors.Is(err, herald.ErrNotFound) {
			t.Errorf("%s of tenant a seen from b: %v", what, err)
		}
	}
	_, err := f.s.RecoverDeliveries(f.ctx, "b", c.ID, f.now, f.now)
	wantErr(t, err, herald.ErrNotFound)
	err = f.s.CreateSubscription(f.ctx, &herald.Subscription{ID: "sub_b", TenantID: "b", ChannelID: c.ID, EventTypes: []string{"*"}, CreatedAt: f.now, UpdatedAt: f.now})
	if err == nil {
		t.Error("tenant b subscribed tenant a's channel")
	}
	for _, list := range []func() (int, error){
		func() (int, error) {
			x, err := f.s.ListChannels(f.ctx, "b", herald.Page{Limit: 10})
			return len(x), err
		},
		func() (int, error) {
			x, err := f.s.ListSubscriptions(f.ctx, "b", herald.SubscriptionFilter{}, herald.Page{Limit: 10})
			return len(x), err
		},
		func() (int, error) {
			x, err := f.s.ListEvents(f.ctx, "b", herald.EventFilter{}, herald.Page{Limit: 10})
			return len(x), err
		},
		func() (int, error) {
			x, err := f.s.ListDeliveries(f.ctx, "b", herald.DeliveryFilter{}, herald.Page{Limit: 10})
			return len(x), err
		},
	} {
		if n, err := list(); err != nil || n != 0 {
			t.Errorf("tenant b lists %d of tenant a's rows (%v)", n, err)
		}
	}
}

func testSettings(t *testing.T, f *fixture) {
	v, err := f.s.SetSettingIfAbsent(f.ctx, "x", "1")
	must(t, err)
	v2, err := f.s.SetSettingIfAbsent(f.ctx, "x", "2")
	must(t, err)
	if v != "1" || v2 != "1" {
		t.Fatal(fmt.Sprint("settings: ", v, v2))
	}
	must(t, f.s.Ping(f.ctx))
}

// testRateSchedule: claims hand out send times at the channel's rate, the
// schedule is kept in the store (so it holds across processes), and no
// delivery is scheduled further ahead than its lease can cover.
func testRateSchedule(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a", func(c *herald.Channel) { c.RateLimitPerSec = 2 })
	for range 6 {
		f.publish("a", "x.y", c.ID)
	}
	claim := func() []herald.Claim {
		cs, err := f.s.ClaimDeliveries(f.ctx, herald.ClaimParams{Now: f.now, Limit: 100, LeaseSlack: 2 * time.Second})
		must(t, err)
		return cs
	}
	first := claim()
	if len(first) != 3 {
		t.Fatalf("claimed %d, want 3 (now, +0.5 s, +1 s; +1.5 s is past the 1 s a 2 s slack allows)", len(first))
	}
	for i, cl := range first {
		want := f.now.Add(time.Duration(i) * 500 * time.Millisecond)
		if got := cl.SendAt; !(got.IsZero() && i == 0) && !got.Equal(want) {
			t.Errorf("claim %d sends at %v, want %v", i, got, want)
		}
	}
	if again := claim(); len(again) != 0 {
		t.Fatalf("a second claim at the same moment got %d", len(again))
	}
	f.now = f.now.Add(time.Second)
	second := claim()
	if len(second) != 2 || !second[0].SendAt.Equal(f.now.Add(500*time.Millisecond)) {
		t.Fatalf("one second later: %d claims, first at %v; want 2 from +1.5 s", len(second), second[0].SendAt)
	}
	for _, cl := range second {
		if !cl.LeaseUntil.After(cl.SendAt.Add(c.Timeout())) {
			t.Errorf("lease %v ends before send time %v plus the timeout", cl.LeaseUntil, cl.SendAt)
		}
	}
}

// testConfigVersion: every change publishing or authentication depends on
// moves the version; publishing and delivering do not.
func testConfigVersion(t *testing.T, f *fixture) {
	version := func() int64 {
		v, err := f.s.ConfigVersion(f.ctx)
		must(t, err)
		return v
	}
	last := version()
	moved := func(what string) {
		t.Helper()
		if v := version(); v == last {
			t.Errorf("%s did not move the config version", what)
		} else {
			last = v
		}
	}
	f.tenant("a")
	moved("creating a tenant")
	c := f.channel("a")
	moved("creating a channel")
	s := f.sub("a", c.ID, "*")
	moved("creating a subscription")
	must(t, f.s.UpdateSubscription(f.ctx, s))
	moved("updating a subscription")
	must(t, f.s.SetEventTypeEnabled(f.ctx, "a", "x.y", false))
	moved("a toggle")
	must(t, f.s.CreateEventType(f.ctx, "a", &herald.EventType{Name: "q.r", Group: "q", Title: "Q"}))
	moved("a custom type")
	sum := sha256.Sum256([]byte("k2"))
	k := &herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, f.now), TenantID: "a", Prefix: "hk", Hash: sum[:], CreatedAt: f.now}
	must(t, f.s.CreateAPIKey(f.ctx, k))
	moved("creating a key")
	must(t, f.s.RevokeAPIKey(f.ctx, "a", k.ID, f.now))
	moved("revoking a key")
	r := f.publish("a", "x.z", c.ID)
	if version() != last {
		t.Error("publishing moved the config version")
	}
	cl := claimOne(t, f, r.DeliveryIDs[0])
	f.complete(cl, herald.StatusFailed, nil, herald.DisabledGone)
	moved("a channel disabled by a 410")
	must(t, f.s.DeleteSubscription(f.ctx, "a", s.ID))
	moved("deleting a subscription")
	ch, err := f.s.GetChannel(f.ctx, "a", c.ID)
	must(t, err)
	must(t, f.s.UpdateChannel(f.ctx, ch))
	moved("updating a channel")
	must(t, f.s.DeleteChannel(f.ctx, "a", c.ID, f.now))
	moved("deleting a channel")
}

// testNoStarvation: a channel at its in-flight limit with a long backlog
// due first must not keep another channel's delivery from being claimed.
func testNoStarvation(t *testing.T, f *fixture) {
	f.tenant("a")
	busy := f.channel("a", func(c *herald.Channel) { c.MaxInFlight = 1 })
	for range 150 {
		f.publish("a", "x.y", busy.ID)
	}
	f.now = f.now.Add(time.Second)
	other := f.channel("a")
	r := f.publish("a", "x.y", other.ID)
	for range 3 {
		for _, c := range f.claim(50) {
			if c.Delivery.ID == r.DeliveryIDs[0] {
				return
			}
		}
	}
	t.Fatal("the other channel's delivery was not claimed in three claims")
}

// testOrphanClaimed: a delivery in flight when its channel was deleted and
// then released is still claimed (without a channel), so the dispatcher can
// end it instead of leaving it pending for ever.
func testOrphanClaimed(t *testing.T, f *fixture) {
	f.tenant("a")
	gone := f.channel("a")
	kept := f.channel("a")
	r := f.publish("a", "x.y", gone.ID)
	f.publish("a", "x.y", kept.ID)
	if cs := f.claim(10); len(cs) != 2 {
		t.Fatalf("claimed %d, want 2", len(cs))
	}
	must(t, f.s.DeleteChannel(f.ctx, "a", gone.ID, f.now))
	must(t, f.s.ReleaseDeliveries(f.ctx, r.DeliveryIDs))
	cs := f.claim(10)
	if len(cs) != 1 || cs[0].Delivery.ID != r.DeliveryIDs[0] || cs[0].Channel != nil {
		t.Fatalf("claimed %+v, want the deleted channel's delivery without a channel", cs)
	}
}

// testHookChannels: a REST Hook's channel and subscription are made in one
// transaction, listed by kind, and a completion asking for it deletes both
// while the delivery and its attempt stay in the log.
func testHookChannels(t *testing.T, f *fixture) {
	f.tenant("a")
	f.tenant("b")
	plain := f.channel("a")
	hook := func(tenant, id string) (*herald.Channel, *herald.Subscription) {
		c := &herald.Channel{ID: id, TenantID: tenant, Kind: herald.ChannelHook, Name: "REST Hook: x.y",
			URL: "https://example.com/zap", Headers: map[string]string{}, Policy: herald.StandardPolicy(), Enabled: true,
			MaxInFlight: 16, Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: f.now, UpdatedAt: f.now}
		sub := &herald.Subscription{ID: herald.NewID(herald.PrefixSubscription, f.now), TenantID: tenant, ChannelID: c.ID,
			EventTypes: []string{"x.y"}, Sources: []string{}, CreatedAt: f.now, UpdatedAt: f.now}
		return c, sub
	}
	v0, err := f.s.ConfigVersion(f.ctx)
	must(t, err)
	h1, s1 := hook("a", herald.NewID(herald.PrefixChannel, f.now))
	must(t, f.s.CreateChannelWithSubscription(f.ctx, h1, s1))
	if v, err := f.s.ConfigVersion(f.ctx); err != nil || v == v0 {
		t.Errorf("creating a hook did not move the config version (%d, %v)", v, err)
	}
	got, err := f.s.GetSubscription(f.ctx, "a", s1.ID)
	must(t, err)
	if got.ChannelID != h1.ID || len(got.EventTypes) != 1 || got.EventTypes[0] != "x.y" {
		t.Fatalf("hook subscription: %+v", got)
	}

	// All or nothing: a subscription that cannot be stored (its ID is
	// taken) leaves no channel behind.
	h2, s2 := hook("a", herald.NewID(herald.PrefixChannel, f.now))
	s2.ID = s1.ID
	if err := f.s.CreateChannelWithSubscription(f.ctx, h2, s2); err == nil {
		t.Fatal("a hook with a taken subscription ID was stored")
	}
	if _, err := f.s.GetChannel(f.ctx, "a", h2.ID); !errors.Is(err, herald.ErrNotFound) {
		t.Fatalf("half-made hook's channel: %v", err)
	}

	f.now = f.now.Add(time.Millisecond)
	h3, s3 := hook("a", herald.NewID(herald.PrefixChannel, f.now))
	must(t, f.s.CreateChannelWithSubscription(f.ctx, h3, s3))
	hb, sb := hook("b", herald.NewID(herald.PrefixChannel, f.now))
	must(t, f.s.CreateChannelWithSubscription(f.ctx, hb, sb))
	hooks, err := f.s.ListChannelsOfKind(f.ctx, "a", herald.ChannelHook, herald.Page{Limit: 10})
	must(t, err)
	if len(hooks) != 2 || hooks[0].ID != h3.ID || hooks[1].ID != h1.ID {
		t.Fatalf("hooks of a, newest first: %+v", hooks)
	}
	page2, err := f.s.ListChannelsOfKind(f.ctx, "a", herald.ChannelHook, herald.Page{After: h3.ID, Limit: 10})
	must(t, err)
	if len(page2) != 1 || page2[0].ID != h1.ID {
		t.Fatalf("second page: %+v", page2)
	}
	webhooks, err := f.s.ListChannelsOfKind(f.ctx, "a", herald.ChannelWebhook, herald.Page{Limit: 10})
	must(t, err)
	if len(webhooks) != 1 || webhooks[0].ID != plain.ID {
		t.Fatalf("webhooks of a: %+v", webhooks)
	}

	// A 410 on a hook: the attempt is recorded, the channel and its
	// subscription are deleted, its other pending deliveries fail.
	r1, r2 := f.publish("a", "x.y", h1.ID), f.publish("a", "x.y", h1.ID)
	cl := claimOne(t, f, r1.DeliveryIDs[0])
	must(t, f.s.ReleaseDeliveries(f.ctx, []string{r2.DeliveryIDs[0]}))
	v1, err := f.s.ConfigVersion(f.ctx)
	must(t, err)
	d := cl.Delivery
	d.Attempts++
	d.Status, d.UpdatedAt, d.LastStatus, d.LastError = herald.StatusFailed, f.now, 410, "receiver answered 410"
	att := herald.Attempt{ID: herald.NewID(herald.PrefixAttempt, f.now), DeliveryID: d.ID, TenantID: "a", Number: 1,
		StartedAt: f.now, StatusCode: 410, ErrorClass: herald.ErrClassStatus, Trigger: herald.TriggerAuto}
	must(t, f.s.CompleteDeliveries(f.ctx, []herald.Completion{{Delivery: d, Attempt: att, DeleteChannel: true}}))
	if _, err := f.s.GetChannel(f.ctx, "a", h1.ID); !errors.Is(err, herald.ErrNotFound) {
		t.Fatalf("hook channel after 410: %v", err)
	}
	if _, err := f.s.GetSubscription(f.ctx, "a", s1.ID); !errors.Is(err, herald.ErrNotFound) {
		t.Fatalf("hook subscription after 410: %v", err)
	}
	if v, err := f.s.ConfigVersion(f.ctx); err != nil || v == v1 {
		t.Errorf("a hook deleted by a 410 did not move the config version (%d, %v)", v, err)
	}
	if got := f.delivery("a", d.ID); got.Status != herald.StatusFailed || got.LastStatus != 410 {
		t.Fatalf("the 410 delivery: %+v", got)
	}
	atts, err := f.s.ListAttempts(f.ctx, "a", d.ID)
	must(t, err)
	if len(atts) != 1 || atts[0].StatusCode != 410 {
		t.Fatalf("the 410 attempt: %+v", atts)
	}
	if got := f.delivery("a", r2.DeliveryIDs[0]); got.Status != herald.StatusFailed {
		t.Fatalf("the hook's other pending delivery: %+v", got)
	}
	// A second completion asking for the same deletion (another in-flight
	// delivery answered 410 too) is not an error.
	d.UpdatedAt = f.now.Add(time.Second)
	must(t, f.s.CompleteDeliveries(f.ctx, []herald.Completion{{Delivery: d, DeleteChannel: true}}))
	// Tenant b's hook is untouched.
	if _, err := f.s.GetChannel(f.ctx, "b", hb.ID); err != nil {
		t.Fatalf("b's hook: %v", err)
	}
}

// testHandoff: a handed-off delivery is written pending but leased, so no
// claim takes it until the lease ends; a claim given busy counts respects
// them instead of counting leases. A shared store refuses handoffs and
// writes nothing (testClaimQueue has its busy counts).
func testHandoff(t *testing.T, f *fixture, local bool) {
	f.tenant("a")
	c := f.channel("a", func(c *herald.Channel) { c.MaxInFlight = 2 })
	e := f.event("a", "x.y")
	pub := herald.Publication{Event: e, ChannelIDs: []string{c.ID, c.ID}, HandedOff: []bool{true, false}, HandoffLease: f.now.Add(time.Hour)}
	res, err := f.s.Publish(f.ctx, []herald.Publication{pub})
	if !local {
		if err == nil {
			t.Fatal("a shared store took handed-off deliveries")
		}
		if _, err := f.s.GetEvent(f.ctx, "a", e.ID); !errors.Is(err, herald.ErrNotFound) {
			t.Fatalf("the refused publication was stored: %v", err)
		}
		return
	}
	must(t, err)
	handed, stored := res[0].DeliveryIDs[0], res[0].DeliveryIDs[1]
	if d := f.delivery("a", handed); d.Status != herald.StatusPending {
		t.Fatalf("handed-off delivery is %s, want pending", d.Status)
	}
	// Without busy counts leases are counted: the handed-off one's takes
	// one of the two slots, and only the other delivery is claimed.
	cs := f.claim(10)
	if len(cs) != 1 || cs[0].Delivery.ID != stored {
		t.Fatalf("claimed %d deliveries, want only the one not handed off", len(cs))
	}
	must(t, f.s.ReleaseDeliveries(f.ctx, []string{stored}))
	// With busy counts the channel's two slots are both taken: nothing.
	full := map[string]int{c.ID: 2}
	cs, err = f.s.ClaimDeliveries(f.ctx, herald.ClaimParams{Now: f.now, Limit: 10, LeaseSlack: time.Second, Busy: full})
	must(t, err)
	if len(cs) != 0 {
		t.Fatalf("claimed %d deliveries of a channel whose slots are all busy", len(cs))
	}
	if full[c.ID] != 2 {
		t.Fatalf("the claim changed the caller's busy counts: %v", full)
	}
	// One slot free by the counts, though leases hold one: one claimed.
	cs, err = f.s.ClaimDeliveries(f.ctx, herald.ClaimParams{Now: f.now, Limit: 10, LeaseSlack: time.Second, Busy: map[string]int{c.ID: 1}})
	must(t, err)
	if len(cs) != 1 || cs[0].Delivery.ID != stored {
		t.Fatalf("with one slot free claimed %d, want the one not handed off", len(cs))
	}
	// Once its lease has ended (the process is gone), the handed-off one
	// is claimed like any other.
	f.now = f.now.Add(2 * time.Hour)
	found := false
	for _, x := range f.claim(10) {
		found = found || x.Delivery.ID == handed
	}
	if !found {
		t.Fatal("the handed-off delivery was not claimed after its lease ended")
	}
}

// testClaimQueue: with busy counts, a claim takes up to Queue deliveries
// of a channel beyond its free slots, oldest first, and leases those
// QueueWait longer, so no later claim takes them while they wait in the
// dispatcher's queue; a rate-limited channel gets none beyond its slots.
// A shared store counts the other processes' leases (all less Held) with
// the busy counts, and queues only for a channel none of whose leases
// another process holds; without busy counts it refuses Queue.
func testClaimQueue(t *testing.T, f *fixture, local bool) {
	f.tenant("a")
	c := f.channel("a", func(c *herald.Channel) { c.MaxInFlight = 2 })
	rated := f.channel("a", func(c *herald.Channel) { c.MaxInFlight = 2; c.RateLimitPerSec = 1000 })
	const wait = time.Hour
	p := herald.ClaimParams{Now: f.now, Limit: 100, LeaseSlack: time.Second, Queue: 3, QueueWait: wait}
	if _, err := f.s.ClaimDeliveries(f.ctx, p); err == nil && !local {
		t.Fatal("a shared store took a queue to claim for without busy counts")
	}
	p.Busy = map[string]int{c.ID: 1}
	var ids []string
	for range 6 {
		ids = append(ids, f.publish("a", "x.y", c.ID).DeliveryIDs[0])
		f.publish("a", "x.y", rated.ID)
		f.now = f.now.Add(time.Millisecond)
	}
	p.Now = f.now
	lease := f.now.Add(c.Timeout() + time.Second)
	cs, err := f.s.ClaimDeliveries(f.ctx, p)
	must(t, err)
	var got []string
	rateds := 0
	claims := map[string]herald.Claim{} // c's, by delivery
	for _, x := range cs {
		claims[x.Delivery.ID] = x
		if x.Delivery.ChannelID == rated.ID {
			rateds++
			if !x.LeaseUntil.Before(lease.Add(wait)) {
				t.Fatal("a rate-limited channel's delivery was leased for a queue")
			}
			continue
		}
		got = append(got, x.Delivery.ID)
		// One slot is free: the oldest delivery is to start now, the
		// next three to wait in the queue.
		want := lease
		if len(got) > 1 {
			want = lease.Add(wait)
		}
		if !x.LeaseUntil.Equal(want) {
			t.Fatalf("claim %d leased until %v, want %v", len(got), x.LeaseUntil, want)
		}
	}
	if rateds != 2 {
		t.Fatalf("claimed %d deliveries of the rate-limited channel with 2 free slots, want 2", rateds)
	}
	if !slices.Equal(got, ids[:4]) {
		t.Fatalf("claimed %v, want the four oldest %v", got, ids[:4])
	}
	// With every slot busy, a claim still takes what the queue has room
	// for: the remaining two. (A shared store is told the four leases
	// are this dispatcher's.)
	p.Busy = map[string]int{c.ID: 2}
	p.Held = map[string]int{c.ID: 4}
	cs, err = f.s.ClaimDeliveries(f.ctx, p)
	must(t, err)
	got = got[:0]
	for _, x := range cs {
		claims[x.Delivery.ID] = x
		if x.Delivery.ChannelID == c.ID {
			got = append(got, x.Delivery.ID)
			if !x.LeaseUntil.Equal(lease.Add(wait)) {
				t.Fatalf("a delivery claimed with every slot busy is leased until %v, want %v", x.LeaseUntil, lease.Add(wait))
			}
		}
	}
	if !slices.Equal(got, ids[4:]) {
		t.Fatalf("with every slot busy claimed %v, want %v", got, ids[4:])
	}
	// After the started one's lease ended, a claim for two free slots
	// passes over the queued ones, still leased.
	f.now = f.now.Add(10 * time.Minute)
	p = herald.ClaimParams{Now: f.now, Limit: 100, LeaseSlack: time.Second, Busy: map[string]int{}, Held: map[string]int{c.ID: 5}}
	cs, err = f.s.ClaimDeliveries(f.ctx, p)
	must(t, err)
	if got, want := deliveryIDs(ofChannel(cs, c.ID)), []string{ids[0]}; !slices.Equal(got, want) {
		t.Fatalf("after the slot's lease ended claimed %v, want %v", got, want)
	}
	if local {
		return
	}

	// Another process, holding none of its leases, finds the channel
	// full, queue or not.
	for range 3 {
		ids = append(ids, f.publish("a", "x.y", c.ID).DeliveryIDs[0])
	}
	other := herald.ClaimParams{Now: f.now, Limit: 100, LeaseSlack: time.Second, Busy: map[string]int{}, Queue: 3, QueueWait: wait}
	cs, err = f.s.ClaimDeliveries(f.ctx, other)
	must(t, err)
	if got := ofChannel(cs, c.ID); len(got) != 0 {
		t.Fatalf("a process holding none of the channel's 6 leases claimed %v", deliveryIDs(got))
	}
	// Once this dispatcher's leases are down to the started one's, the
	// other process takes the one free slot and queues nothing: its queue
	// would start by its own count, past this dispatcher's request.
	for _, id := range ids[1:6] {
		f.complete(claims[id], herald.StatusSucceeded, nil, "")
	}
	cs, err = f.s.ClaimDeliveries(f.ctx, other)
	must(t, err)
	for _, x := range ofChannel(cs, c.ID) {
		if want := f.now.Add(c.Timeout() + time.Second); !x.LeaseUntil.Equal(want) {
			t.Fatalf("the other process's delivery is leased until %v, want %v, not queued", x.LeaseUntil, want)
		}
	}
	if got, want := deliveryIDs(ofChannel(cs, c.ID)), ids[6:7]; !slices.Equal(got, want) {
		t.Fatalf("with one lease held elsewhere the other process claimed %v, want %v", got, want)
	}
}

// testFreeSlotsFirst: a claim offers every channel's free slots before any
// channel's queue, so the older channel's queue does not take the claim
// from the other's free slots; what the limit leaves goes to the queues,
// oldest channel first.
func testFreeSlotsFirst(t *testing.T, f *fixture) {
	f.tenant("a")
	older := f.channel("a", func(c *herald.Channel) { c.MaxInFlight = 2 })
	newer := f.channel("a", func(c *herald.Channel) { c.MaxInFlight = 2 })
	for _, c := range []*herald.Channel{older, newer} {
		for range 5 {
			f.publish("a", "x.y", c.ID)
			f.now = f.now.Add(time.Millisecond)
		}
	}
	cs, err := f.s.ClaimDeliveries(f.ctx, herald.ClaimParams{Now: f.now, Limit: 6, LeaseSlack: time.Second,
		Busy: map[string]int{}, Held: map[string]int{}, Queue: 5, QueueWait: time.Hour})
	must(t, err)
	got := map[string]int{}
	for _, c := range cs {
		got[c.Delivery.ChannelID]++
	}
	if got[older.ID] != 4 || got[newer.ID] != 2 {
		t.Fatalf("claimed %d of the older channel and %d of the newer, want 4 (2 slots, 2 queued) and 2 (its slots)", got[older.ID], got[newer.ID])
	}
}

// ofChannel is the claims of one channel, in order.
func ofChannel(cs []herald.Claim, channelID string) []herald.Claim {
	var out []herald.Claim
	for _, c := range cs {
		if c.Delivery.ChannelID == channelID {
			out = append(out, c)
		}
	}
	return out
}

func deliveryIDs(cs []herald.Claim) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.Delivery.ID
	}
	return ids
}

// testCompletionsTogether: results written in one call (as the completer
// batches them) each land on their own delivery: a success, a retry with
// its next time, and a delivery ended without an attempt; each attempt is
// logged once, and no lease is left.
func testCompletionsTogether(t *testing.T, f *fixture) {
	f.tenant("a")
	c := f.channel("a")
	var cls []herald.Claim
	for range 3 {
		cls = append(cls, claimOne(t, f, f.publish("a", "x.y", c.ID).DeliveryIDs[0]))
	}
	next := f.now.Add(time.Minute)
	var cs []herald.Completion
	for i, cl := range cls {
		d := cl.Delivery
		d.UpdatedAt = f.now
		a := herald.Attempt{ID: herald.NewID(herald.PrefixAttempt, f.now), DeliveryID: d.ID, TenantID: "a", Number: 1,
			StartedAt: f.now, DurationMS: int64(10 + i), Trigger: herald.TriggerAuto}
		switch i {
		case 0:
			d.Status, d.Attempts, d.LastStatus, a.StatusCode = herald.StatusSucceeded, 1, 204, 204
		case 1:
			d.Status, d.Attempts, d.NextAttemptAt, d.LastStatus, d.LastError = herald.StatusPending, 1, &next, 503, "receiver answered 503"
			a.StatusCode, a.ResponseBody, a.ErrorClass, a.Error = 503, "busy", herald.ErrClassStatus, "receiver answered 503"
		case 2:
			d.Status, d.LastError, a = herald.StatusFailed, "channel deleted", herald.Attempt{}
		}
		cs = append(cs, herald.Completion{Delivery: d, Attempt: a})
	}
	must(t, f.s.CompleteDeliveries(f.ctx, cs))
	for i, cl := range cls {
		d := f.delivery("a", cl.Delivery.ID)
		want := cs[i].Delivery
		if d.Status != want.Status || d.Attempts != want.Attempts || d.LastStatus != want.LastStatus || d.LastError != want.LastError ||
			(d.NextAttemptAt == nil) != (want.NextAttemptAt == nil) || (d.NextAttemptAt != nil && !d.NextAttemptAt.Equal(*want.NextAttemptAt)) {
			t.Fatalf("delivery %d after its result: %+v, want %+v", i, d, want)
		}
		atts, err := f.s.ListAttempts(f.ctx, "a", d.ID)
		must(t, err)
		wantAtts := 1
		if i == 2 {
			wantAtts = 0
		}
		if len(atts) != wantAtts || (wantAtts == 1 && (atts[0].StatusCode != cs[i].Attempt.StatusCode || atts[0].DurationMS != cs[i].Attempt.DurationMS ||
			atts[0].ResponseBody != cs[i].Attempt.ResponseBody || atts[0].Error != cs[i].Attempt.Error)) {
			t.Fatalf("delivery %d has attempts %+v, want %d like %+v", i, atts, wantAtts, cs[i].Attempt)
		}
	}
	// No lease is left: the retry is claimed again once due.
	f.now = next
	claimOne(t, f, cls[1].Delivery.ID)
}
