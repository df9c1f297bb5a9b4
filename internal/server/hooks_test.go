package server_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhooks"
)

// REST Hooks, end to end: what an integration platform does (subscribe,
// ask for samples, receive, unsubscribe) against the real server and a
// local target.

// hook subscribes target to event and returns the answer.
func (h *herald) hook(tenant, key, target, event string) map[string]any {
	h.t.Helper()
	return h.must(201, "POST", "/v1/tenants/"+tenant+"/hooks", key, map[string]any{"target_url": target, "event": event})
}

// hookIDs lists the tenant's hooks' ids.
func (h *herald) hookIDs(tenant, key string) []string {
	h.t.Helper()
	var ids []string
	for _, raw := range h.must(200, "GET", "/v1/tenants/"+tenant+"/hooks", key, nil)["data"].([]any) {
		ids = append(ids, raw.(map[string]any)["id"].(string))
	}
	return ids
}

// TestHookSubscribeDeliverUnsubscribe: a hook gets its event signed like a
// webhook; after unsubscribing, its channel and subscription are gone and
// nothing more arrives.
func TestHookSubscribeDeliverUnsubscribe(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)

	hk := h.hook(tid, key, rc.URL+"/zap", "order.completed")
	for _, f := range []string{"id", "event", "target_url", "channel_id", "subscription_id", "created_at", "secret"} {
		if s, _ := hk[f].(string); s == "" {
			t.Errorf("subscribe answer lacks %s: %v", f, hk)
		}
	}
	id, chID, subID := hk["id"].(string), hk["channel_id"].(string), hk["subscription_id"].(string)
	if id != chID || hk["event"] != "order.completed" || hk["target_url"] != rc.URL+"/zap" {
		t.Errorf("subscribe answer: %v", hk)
	}
	ch := h.must(200, "GET", "/v1/tenants/acme/channels/"+chID, key, nil)
	if ch["kind"] != "hook" || ch["name"] != "REST Hook: order.completed" || ch["policy"] != "standard" {
		t.Errorf("hook channel: %v", ch)
	}
	sub := h.must(200, "GET", "/v1/tenants/acme/subscriptions/"+subID, key, nil)
	if sub["channel_id"] != chID || !reflect.DeepEqual(sub["event_types"], []any{"order.completed"}) {
		t.Errorf("hook subscription: %v", sub)
	}
	if ids := h.hookIDs(tid, key); !reflect.DeepEqual(ids, []string{id}) {
		t.Errorf("hooks: %v", ids)
	}

	// Another type does not reach it; its own type does, signed.
	h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	got := rc.waitN(t, 1)
	rc.quiet(t, 1, 100*time.Millisecond)
	v, err := webhooks.NewVerifier(hk["secret"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(got[0].Body, got[0].Header); err != nil {
		t.Errorf("hook request does not verify with the subscribe answer's secret: %v", err)
	}
	if p := got[0].payload(); p["id"] != evt || p["type"] != "order.completed" || got[0].Header.Get("webhook-id") != evt {
		t.Errorf("hook request: %s %v", got[0].Body, got[0].Header)
	}

	// Unsubscribe: 204, then both halves are gone and nothing more comes.
	h.must(204, "DELETE", "/v1/tenants/acme/hooks/"+id, key, nil)
	if r := h.call("GET", "/v1/tenants/acme/channels/"+chID, key, nil); r.Status != 404 {
		t.Errorf("channel after unsubscribe: %s", r)
	}
	if r := h.call("GET", "/v1/tenants/acme/subscriptions/"+subID, key, nil); r.Status != 404 {
		t.Errorf("subscription after unsubscribe: %s", r)
	}
	if ids := h.hookIDs(tid, key); len(ids) != 0 {
		t.Errorf("hooks after unsubscribe: %v", ids)
	}
	if r := h.call("DELETE", "/v1/tenants/acme/hooks/"+id, key, nil); r.Status != 404 {
		t.Errorf("second unsubscribe: %s", r)
	}
	after := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))
	if num(after["deliveries"]) != 0 {
		t.Errorf("publish after unsubscribe made %v deliveries", after["deliveries"])
	}
	rc.quiet(t, 1, 150*time.Millisecond)
}

// TestHookGoneDeletesHook: a target answering 410 is unsubscribed — the
// hook disappears — while the delivery log keeps the failed delivery and
// its 410 attempt. A manual retry answered with 410 does the same.
func TestHookGoneDeletesHook(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	gone := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	keep := newReceiver(t, nil)
	hk := h.hook(tid, key, gone.URL, "order.*")
	kept := h.hook(tid, key, keep.URL, "order.completed")
	id := hk["id"].(string)

	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	d := h.waitStatus(tid, key, h.deliveryFor(tid, key, evt, id), "failed", 1)
	if num(d["last_status_code"]) != 410 || !strings.Contains(d["last_error"].(string), "hook deleted") {
		t.Errorf("410 delivery: %v", d)
	}
	log := d["attempt_log"].([]any)
	if len(log) != 1 || num(log[0].(map[string]any)["status_code"]) != 410 {
		t.Errorf("410 attempt log: %v", log)
	}
	if ids := h.hookIDs(tid, key); !reflect.DeepEqual(ids, []string{kept["id"].(string)}) {
		t.Errorf("hooks after 410: %v, want only %v", ids, kept["id"])
	}
	if r := h.call("GET", "/v1/tenants/acme/channels/"+id, key, nil); r.Status != 404 {
		t.Errorf("channel after 410: %s", r)
	}
	if r := h.call("GET", "/v1/tenants/acme/subscriptions/"+hk["subscription_id"].(string), key, nil); r.Status != 404 {
		t.Errorf("subscription after 410: %s", r)
	}
	keep.waitN(t, 1)
	h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))
	keep.waitN(t, 2)
	gone.quiet(t, 1, 100*time.Millisecond)

	// Manual retry: the first answer is a permanent 400, the retry gets 410.
	retried := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusGone)
	})
	rh := h.hook(tid, key, retried.URL, "payment.succeeded")
	evt = h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))["id"].(string)
	dID := h.deliveryFor(tid, key, evt, rh["id"].(string))
	h.waitStatus(tid, key, dID, "failed", 1)
	if ids := h.hookIDs(tid, key); len(ids) != 2 {
		t.Fatalf("a 400 removed a hook: %v", ids)
	}
	ans := h.must(200, "POST", "/v1/tenants/acme/deliveries/"+dID+"/retry", key, nil)
	if num(ans["attempt"].(map[string]any)["status_code"]) != 410 {
		t.Errorf("manual retry: %v", ans)
	}
	if ids := h.hookIDs(tid, key); !reflect.DeepEqual(ids, []string{kept["id"].(string)}) {
		t.Errorf("hooks after a manual retry answered 410: %v", ids)
	}
	if d := h.delivery(tid, key, dID); len(d["attempt_log"].([]any)) != 2 {
		t.Errorf("retried delivery's log: %v", d)
	}
}

// TestHookSamples: with no events the sample is the catalog example in the
// body shape a hook receives; after two events, those two, newest first,
// exactly as sent.
func TestHookSamples(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")

	var samples []map[string]any
	get := func(typ string) {
		t.Helper()
		r := h.call("GET", "/v1/tenants/acme/hooks/samples/"+typ, key, nil)
		if r.Status != 200 {
			t.Fatalf("samples of %s: %s", typ, r)
		}
		samples = nil
		if err := json.Unmarshal(r.Body, &samples); err != nil {
			t.Fatalf("samples of %s: %v: %s", typ, err, r.Body)
		}
	}
	get("order.completed")
	if len(samples) != 1 {
		t.Fatalf("samples with no events: %v", samples)
	}
	s := samples[0]
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	if len(keys) != 5 || s["type"] != "order.completed" || s["source"] != "sample" ||
		!strings.HasPrefix(s["id"].(string), "evt_") || !reflect.DeepEqual(s["data"], h.example("order.completed")) {
		t.Errorf("example sample: %v", s)
	}
	if _, err := time.Parse(time.RFC3339Nano, s["timestamp"].(string)); err != nil {
		t.Errorf("sample timestamp: %v", err)
	}

	// A custom type's example serves the same way.
	h.must(201, "POST", "/v1/tenants/acme/event-types", key, map[string]any{
		"name": "invoice.paid", "example": map[string]any{"amount": 100},
	})
	get("invoice.paid")
	if len(samples) != 1 || !reflect.DeepEqual(samples[0]["data"], map[string]any{"amount": float64(100)}) {
		t.Errorf("custom type sample: %v", samples)
	}

	// Two real events (a hook receives them too): the samples are exactly
	// the bodies it got, newest first. A channel test is not a real event.
	rc := newReceiver(t, nil)
	h.hook(tid, key, rc.URL, "order.completed")
	first := h.example("order.completed")
	first["order_id"] = "first"
	second := h.example("order.completed")
	second["order_id"] = "second"
	e1 := h.publish(tid, key, "order.completed", "shop", first)["id"].(string)
	h.clock.Advance(time.Millisecond)
	e2 := h.publish(tid, key, "order.completed", "funnel", second)["id"].(string)
	got := rc.waitN(t, 2)
	ch, _ := h.channel(tid, key, newReceiver(t, nil).URL, nil)
	h.must(200, "POST", "/v1/tenants/acme/channels/"+ch+"/test", key, map[string]any{"event_type": "order.completed"})

	r := h.call("GET", "/v1/tenants/acme/hooks/samples/order.completed", key, nil)
	var raw []json.RawMessage
	if err := json.Unmarshal(r.Body, &raw); err != nil || len(raw) != 2 {
		t.Fatalf("samples after two events: %s", r)
	}
	sent := map[string]string{}
	for _, g := range got {
		sent[g.payload()["id"].(string)] = string(g.Body)
	}
	for i, want := range []string{e2, e1} {
		if string(raw[i]) != sent[want] {
			t.Errorf("sample %d:\n got %s\nwant %s (the body the hook received)", i, raw[i], sent[want])
		}
	}

	r = h.call("GET", "/v1/tenants/acme/hooks/samples/order.nonexistent", key, nil)
	if r.Status != 404 || !strings.Contains(r.Header.Get("Content-Type"), "problem+json") {
		t.Errorf("samples of an unknown type: %s", r)
	}
}

// TestHookValidationAndScoping: bad subscribe bodies answer 422 naming the
// field; /channels cannot make a hook; another tenant cannot see or delete
// one; DELETE /hooks refuses a channel that is not a hook.
func TestHookValidationAndScoping(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	_, otherKey := h.tenant("other")
	rc := newReceiver(t, nil)

	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"missing target_url", map[string]any{"event": "order.completed"}, "target_url"},
		{"empty target_url", map[string]any{"target_url": " ", "event": "order.completed"}, "target_url"},
		{"not http", map[string]any{"target_url": "ftp://example.com/x", "event": "order.completed"}, "target_url"},
		{"private address", map[string]any{"target_url": "http://10.1.2.3/hook", "event": "order.completed"}, "target_url"},
		{"metadata address", map[string]any{"target_url": "http://169.254.169.254/latest", "event": "order.completed"}, "target_url"},
		{"missing event", map[string]any{"target_url": rc.URL}, "event"},
		{"unknown event", map[string]any{"target_url": rc.URL, "event": "order.teleported"}, "event"},
		{"unknown group", map[string]any{"target_url": rc.URL, "event": "teleport.*"}, "event"},
		{"not a type", map[string]any{"target_url": rc.URL, "event": "Order Completed"}, "event"},
	} {
		r := h.call("POST", "/v1/tenants/acme/hooks", key, tc.body)
		var p struct {
			Errors []struct{ Field, Detail string }
		}
		_ = json.Unmarshal(r.Body, &p)
		if r.Status != 422 || len(p.Errors) == 0 || p.Errors[0].Field != tc.field || p.Errors[0].Detail == "" {
			t.Errorf("%s: got %s, want 422 naming %s", tc.name, r, tc.field)
		}
	}
	if r := h.call("POST", "/v1/tenants/acme/hooks", key, map[string]any{"target_url": rc.URL, "event": "order.completed", "extra": 1}); r.Status != 422 {
		t.Errorf("unknown field: %s", r)
	}
	// Patterns the subscription model allows.
	h.hook(tid, key, rc.URL, "*")
	h.hook(tid, key, rc.URL, "order.*")
	if r := h.call("POST", "/v1/tenants/acme/channels", key, map[string]any{"kind": "hook", "name": "x", "url": rc.URL}); r.Status != 422 ||
		!strings.Contains(string(r.Body), "/hooks") {
		t.Errorf("kind hook through /channels: %s", r)
	}

	hk := h.hook(tid, key, rc.URL, "order.completed")
	id := hk["id"].(string)
	// A client that saves back what it read sends the kind unchanged.
	if r := h.call("PATCH", "/v1/tenants/acme/channels/"+id, key, map[string]any{"kind": "hook", "name": "Zap: orders"}); r.Status != 200 {
		t.Errorf("patching a hook with its own kind: %s", r)
	}
	if r := h.call("PATCH", "/v1/tenants/acme/channels/"+id, key, map[string]any{"kind": "webhook"}); r.Status != 422 {
		t.Errorf("changing a hook's kind: %s", r)
	}
	if r := h.call("DELETE", "/v1/tenants/acme/hooks/"+id, otherKey, nil); r.Status != 404 {
		t.Errorf("another tenant's key deleting acme's hook: %s", r)
	}
	if r := h.call("DELETE", "/v1/tenants/other/hooks/"+id, otherKey, nil); r.Status != 404 {
		t.Errorf("acme's hook under another tenant: %s", r)
	}
	if r := h.call("GET", "/v1/tenants/other/hooks", otherKey, nil); r.Status != 200 || strings.Contains(string(r.Body), id) {
		t.Errorf("other tenant's hook list: %s", r)
	}
	if r := h.call("GET", "/v1/tenants/acme/hooks", otherKey, nil); r.Status != 404 {
		t.Errorf("acme's hooks with another tenant's key: %s", r)
	}
	// (The harness's clock stands still, so the three ids share a
	// millisecond and their order is not fixed.)
	if ids := h.hookIDs(tid, key); len(ids) != 3 || !slices.Contains(ids, id) {
		t.Errorf("hooks after the other tenant's attempts: %v", ids)
	}
	webhook, _ := h.channel(tid, key, rc.URL, nil)
	if r := h.call("DELETE", "/v1/tenants/acme/hooks/"+webhook, key, nil); r.Status != 404 {
		t.Errorf("deleting a webhook channel through /hooks: %s", r)
	}
	h.must(200, "GET", "/v1/tenants/acme/channels/"+webhook, key, nil)

	// Paging: one hook a page, three pages.
	page := h.must(200, "GET", "/v1/tenants/acme/hooks?limit=2", key, nil)
	if len(page["data"].([]any)) != 2 || page["next_cursor"] == nil {
		t.Fatalf("first page: %v", page)
	}
	page = h.must(200, "GET", "/v1/tenants/acme/hooks?limit=2&cursor="+page["next_cursor"].(string), key, nil)
	if len(page["data"].([]any)) != 1 || page["next_cursor"] != nil {
		t.Errorf("second page: %v", page)
	}
}
