package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/server"
)

// These tests send bad input of every kind to the real server and check the
// answer: the right 4xx status, an application/problem+json body that names
// the field and says how to fix it, nothing stored, and never a 5xx.

// problemDoc is an RFC 9457 answer as Herald writes it.
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// fixWords are phrases that tell a client what to do. Every field detail
// must hold one, so no answer is a bare "invalid".
var fixWords = []string{
	"must", "use ", "required", "remove", "send", "at most", "at least", "choose", "create", "pass ",
	"allow", "check", "between", "lists", "enable", "resend", "write", "split", "leave", "copy",
	"only ", "e.g.", "such as",
}

func saysFix(s string) bool {
	s = strings.ToLower(s)
	for _, w := range fixWords {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// isProblem checks the shape every error answer has: problem+json with a
// title, the status repeated and a detail.
func isProblem(t *testing.T, what string, r response) (problemDoc, bool) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("%s: Content-Type %q, want application/problem+json (body %.300s)", what, ct, r.Body)
		return problemDoc{}, false
	}
	var p problemDoc
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Errorf("%s: problem body does not decode: %v: %.300s", what, err, r.Body)
		return p, false
	}
	if p.Title == "" || p.Detail == "" || p.Status != r.Status {
		t.Errorf("%s: problem lacks title/detail or repeats status %d for %d: %.300s", what, p.Status, r.Status, r.Body)
		return p, false
	}
	return p, true
}

// wantProblem checks r is a problem with status; when field is set, an
// errors entry must name exactly that field with a detail that says how to
// fix it and holds every fragment in mentions (fragments may also be in
// the top-level detail).
func wantProblem(t *testing.T, what string, r response, status int, field string, mentions ...string) problemDoc {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: got %s, want %d", what, trunc(r), status)
		return problemDoc{}
	}
	p, ok := isProblem(t, what, r)
	if !ok {
		return p
	}
	detail := p.Detail
	if field != "" {
		found := false
		for _, e := range p.Errors {
			if e.Field != field {
				continue
			}
			found = true
			if e.Detail == "" || !saysFix(e.Detail) {
				t.Errorf("%s: field %s has detail %q, which does not say how to fix it", what, field, e.Detail)
			}
			detail += " " + e.Detail
		}
		if !found {
			t.Errorf("%s: no errors entry for field %q: %s", what, field, trunc(r))
		}
	}
	for _, m := range mentions {
		if !strings.Contains(detail, m) {
			t.Errorf("%s: answer does not mention %q: %s", what, m, trunc(r))
		}
	}
	return p
}

func trunc(r response) string {
	s := r.String()
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

// state is what a tenant has stored: bad input must leave it unchanged.
func (h *herald) state(tenant, key string, paths ...string) string {
	h.t.Helper()
	var b strings.Builder
	for _, p := range append([]string{"/events?limit=500", "/deliveries?limit=500", "/channels?limit=500", "/subscriptions?limit=500"}, paths...) {
		r := h.call("GET", "/v1/tenants/"+tenant+p, key, nil)
		if r.Status != 200 {
			h.t.Fatalf("GET %s: %s", p, r)
		}
		b.Write(r.Body)
	}
	return b.String()
}

type badCase struct {
	name         string
	method, path string // path below /v1/tenants/acme unless it starts with /v1
	admin        bool
	body         any
	headers      []string
	status       int
	field        string
	mentions     []string
}

// TestInputBadRequests sends every kind of bad input to every route that
// takes input and checks each answer, and that nothing was stored or
// changed by any of them.
func TestInputBadRequests(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, nil)
	sub := h.subscribe(tid, key, ch, []string{"*"}, nil, "")
	h.must(201, "POST", "/v1/tenants/acme/event-types", key, map[string]any{
		"name": "invoice.paid", "schema": map[string]any{"type": "object", "required": []string{"amount"},
			"properties": map[string]any{"amount": map[string]any{"type": "integer", "minimum": 0}}},
		"example": map[string]any{"amount": 100},
	})
	evt := h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))
	dlv := h.deliveries(tid, key, "event_id="+evt["id"].(string))[0]["id"].(string)
	h.waitStatus(tid, key, dlv, "succeeded", 1)

	payment := func(mut func(d map[string]any)) map[string]any {
		d := h.example("payment.succeeded")
		if mut != nil {
			mut(d)
		}
		return map[string]any{"type": "payment.succeeded", "source": "shop", "data": d}
	}
	good := payment(nil)
	chPath := "/channels/" + ch
	subPath := "/subscriptions/" + sub
	recv := rc.URL + "/hook"
	overData := `{"type":"payment.succeeded","data":{"pad":"` + strings.Repeat("x", 300<<10) + `"}}`
	longKey := strings.Repeat("k", 300)
	bigBatch := `{"events":[` + strings.Repeat(`{"type":"payment.succeeded","data":{"pad":"`+strings.Repeat("y", 200<<10)+`"}},`, 84) + `{}]}`

	cases := []badCase{
		// Publish.
		{name: "publish unterminated JSON", method: "POST", path: "/events", body: `{"type": "payment.succeeded", "data": {`, status: 400},
		{name: "publish empty body", method: "POST", path: "/events", body: ``, status: 400},
		{name: "publish two values", method: "POST", path: "/events", body: `{"type":"payment.succeeded","data":{}} {}`, status: 400},
		{name: "publish syntax error", method: "POST", path: "/events", body: `{"type": payment.succeeded}`, status: 400, mentions: []string{"byte"}},
		{name: "publish array body", method: "POST", path: "/events", body: `[{"type":"payment.succeeded","data":{}}]`, status: 422, mentions: []string{"JSON object"}},
		{name: "publish unknown type", method: "POST", path: "/events", body: map[string]any{"type": "nope.nothing", "data": map[string]any{}},
			status: 422, field: "type", mentions: []string{"nope.nothing", "/v1/tenants/acme/event-types"}},
		{name: "publish no type", method: "POST", path: "/events", body: map[string]any{"data": map[string]any{}}, status: 422, field: "type"},
		{name: "publish type not a string", method: "POST", path: "/events", body: `{"type": 5, "data": {}}`, status: 422, field: "type", mentions: []string{"string"}},
		{name: "publish no data", method: "POST", path: "/events", body: map[string]any{"type": "payment.succeeded"}, status: 422, field: "data"},
		{name: "publish data array", method: "POST", path: "/events", body: `{"type":"payment.succeeded","data":[1]}`, status: 422, field: "data", mentions: []string{"object"}},
		{name: "publish schema type", method: "POST", path: "/events", body: payment(func(d map[string]any) { d["customer"].(map[string]any)["email"] = 42 }),
			status: 422, field: "data.customer.email", mentions: []string{"string"}},
		{name: "publish schema required", method: "POST", path: "/events", body: payment(func(d map[string]any) { delete(d["customer"].(map[string]any), "email") }),
			status: 422, field: "data.customer.email", mentions: []string{"required"}},
		{name: "publish schema nested index", method: "POST", path: "/events", body: payment(func(d map[string]any) {
			d["product_cart"] = []any{map[string]any{"product_id": "p1", "quantity": 1}, map[string]any{"product_id": "p2", "quantity": "two"}}
		}), status: 422, field: "data.product_cart[1].quantity"},
		{name: "publish custom schema", method: "POST", path: "/events", body: map[string]any{"type": "invoice.paid", "data": map[string]any{"amount": -5}},
			status: 422, field: "data.amount", mentions: []string{"at least 0"}},
		{name: "publish bad source", method: "POST", path: "/events", body: map[string]any{"type": "payment.succeeded", "source": "Shop!", "data": good["data"]},
			status: 422, field: "source", mentions: []string{"slug"}},
		{name: "publish occurred_at text", method: "POST", path: "/events", body: map[string]any{"type": "payment.succeeded", "occurred_at": "yesterday", "data": good["data"]},
			status: 422, field: "occurred_at", mentions: []string{"RFC 3339"}},
		{name: "publish occurred_at number", method: "POST", path: "/events", body: map[string]any{"type": "payment.succeeded", "occurred_at": 1700000000, "data": good["data"]},
			status: 422, field: "occurred_at", mentions: []string{"RFC 3339"}},
		{name: "publish occurred_at year 1", method: "POST", path: "/events", body: map[string]any{"type": "payment.succeeded", "occurred_at": "0001-01-01T00:00:00Z", "data": good["data"]},
			status: 422, field: "occurred_at"},
		{name: "publish unknown field", method: "POST", path: "/events", body: map[string]any{"type": "payment.succeeded", "dta": map[string]any{}},
			status: 422, field: "dta", mentions: []string{"openapi"}},
		{name: "publish long idempotency_key", method: "POST", path: "/events", body: map[string]any{"type": "payment.succeeded", "idempotency_key": longKey, "data": good["data"]},
			status: 422, field: "idempotency_key", mentions: []string{"255"}},
		{name: "publish long Idempotency-Key header", method: "POST", path: "/events", body: good, headers: []string{"Idempotency-Key", longKey},
			status: 422, field: "Idempotency-Key", mentions: []string{"255"}},
		{name: "publish invalid UTF-8 in data", method: "POST", path: "/events", body: "{\"type\":\"payment.succeeded\",\"data\":{\"note\":\"\xff\xfe\"}}",
			status: 422, field: "data", mentions: []string{"UTF-8"}},
		{name: "publish data over 256 KiB, body under its limit", method: "POST", path: "/events",
			body: `{"type":"payment.succeeded","data":{"pad":"` + strings.Repeat("x", 256<<10) + `"}}`, status: 413, field: "data", mentions: []string{"256 KiB"}},
		{name: "publish body over its limit", method: "POST", path: "/events", body: overData, status: 413, field: "data", mentions: []string{"256 KiB"}},

		// Batch publish: all or nothing, items named by index.
		{name: "batch unterminated", method: "POST", path: "/events/batch", body: `{"events":[{}`, status: 400},
		{name: "batch empty", method: "POST", path: "/events/batch", body: map[string]any{"events": []any{}}, status: 422, field: "events"},
		{name: "batch events not an array", method: "POST", path: "/events/batch", body: map[string]any{"events": "x"}, status: 422, field: "events", mentions: []string{"array"}},
		{name: "batch bad item schema", method: "POST", path: "/events/batch", body: map[string]any{"events": []any{good,
			payment(func(d map[string]any) { d["customer"].(map[string]any)["email"] = false }), good}},
			status: 422, field: "events[1].data.customer.email"},
		{name: "batch item not an object", method: "POST", path: "/events/batch", body: map[string]any{"events": []any{good, 5}},
			status: 422, field: "events[1]", mentions: []string{"object"}},
		{name: "batch item bad time", method: "POST", path: "/events/batch", body: map[string]any{"events": []any{good,
			map[string]any{"type": "payment.succeeded", "occurred_at": "soon", "data": good["data"]}}},
			status: 422, field: "events[1].occurred_at", mentions: []string{"RFC 3339"}},
		{name: "batch item unknown field", method: "POST", path: "/events/batch", body: map[string]any{"events": []any{good, map[string]any{"typ": "x"}}},
			status: 422, field: "events[1].typ"},
		{name: "batch item data too large", method: "POST", path: "/events/batch",
			body: `{"events":[{"type":"payment.succeeded","data":{"pad":"` + strings.Repeat("x", 257<<10) + `"}}]}`, status: 422, field: "events[0].data", mentions: []string{"256 KiB"}},
		{name: "batch body over 16 MiB", method: "POST", path: "/events/batch", body: bigBatch, status: 413, mentions: []string{"16 MiB"}},

		// Channels.
		{name: "channel unterminated", method: "POST", path: "/channels", body: `{"name": "x", "url": `, status: 400},
		{name: "channel array body", method: "POST", path: "/channels", body: `[]`, status: 422},
		{name: "channel scheme", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": "ftp://example.com/"}, status: 422, field: "url", mentions: []string{"http"}},
		{name: "channel not a URL", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": "not a url"}, status: 422, field: "url"},
		{name: "channel URL with credentials", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": "http://u:p@127.0.0.1/"}, status: 422, field: "url", mentions: []string{"header"}},
		{name: "channel URL bad port", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": "http://127.0.0.1:99999/"}, status: 422, field: "url", mentions: []string{"65535"}},
		{name: "channel URL too long", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv + "/" + strings.Repeat("p", 5000)}, status: 422, field: "url", mentions: []string{"4096"}},
		{name: "channel no URL", method: "POST", path: "/channels", body: map[string]any{"name": "x"}, status: 422, field: "url"},
		{name: "channel no name", method: "POST", path: "/channels", body: map[string]any{"url": recv}, status: 422, field: "name"},
		{name: "channel name too long", method: "POST", path: "/channels", body: map[string]any{"name": strings.Repeat("n", 201), "url": recv}, status: 422, field: "name", mentions: []string{"200"}},
		{name: "channel unknown policy", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "policy": "fast"},
			status: 422, field: "policy", mentions: []string{"standard", "postback"}},
		{name: "channel policy not an object", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "policy": 5},
			status: 422, field: "policy", mentions: []string{"standard"}},
		{name: "channel policy huge delay", method: "POST", path: "/channels", body: `{"name":"x","url":"` + recv + `","policy":{"delays_s":[5, 1e308]}}`,
			status: 422, field: "policy.delays_s[1]"},
		{name: "channel policy negative delay", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "policy": map[string]any{"delays_s": []int{5, -1}}},
			status: 422, field: "policy.delays_s[1]", mentions: []string{"between 0 and"}},
		{name: "channel policy unknown field", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "policy": map[string]any{"delays": []int{5}}},
			status: 422, field: "policy.delays", mentions: []string{"delays_s"}},
		{name: "channel policy retry status", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "policy": map[string]any{"delays_s": []int{5}, "retry_statuses": []int{200, 1000}}},
			status: 422, field: "policy.retry_statuses[1]"},
		{name: "channel timeout huge", method: "POST", path: "/channels", body: `{"name":"x","url":"` + recv + `","timeout_s":1e400}`, status: 422, field: "timeout_s", mentions: []string{"whole number"}},
		{name: "channel timeout fraction", method: "POST", path: "/channels", body: `{"name":"x","url":"` + recv + `","timeout_s":1.5}`, status: 422, field: "timeout_s", mentions: []string{"whole number"}},
		{name: "channel timeout too long", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "timeout_s": 500}, status: 422, field: "timeout_s", mentions: []string{"120"}},
		{name: "channel reserved header", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "headers": map[string]string{"Host": "evil"}},
			status: 422, field: "headers.Host"},
		{name: "channel signature header", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "headers": map[string]string{"webhook-signature": "v1,x"}},
			status: 422, field: "headers.webhook-signature"},
		{name: "channel header name CRLF", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "headers": map[string]string{"X-A\r\nInjected": "1"}},
			status: 422, field: "headers.X-A\r\nInjected"},
		{name: "channel header value CRLF", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "headers": map[string]string{"X-Ok": "a\r\nInjected: 1"}},
			status: 422, field: "headers.X-Ok"},
		{name: "channel header value not a string", method: "POST", path: "/channels", body: `{"name":"x","url":"` + recv + `","headers":{"X-Ok":"1","X-Num":2}}`,
			status: 422, field: "headers.X-Num", mentions: []string{"string"}},
		{name: "channel max_in_flight", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "max_in_flight": 0}, status: 422, field: "max_in_flight"},
		{name: "channel rate limit", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "rate_limit_per_sec": -1}, status: 422, field: "rate_limit_per_sec"},
		{name: "channel bad secret", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "secret": "hunter2"}, status: 422, field: "secret", mentions: []string{"whsec_"}},
		{name: "channel kind", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "kind": "sms"}, status: 422, field: "kind"},
		{name: "channel enabled not a bool", method: "POST", path: "/channels", body: map[string]any{"name": "x", "url": recv, "enabled": "yes"}, status: 422, field: "enabled", mentions: []string{"true or false"}},
		{name: "channel body over 1 MiB", method: "POST", path: "/channels", body: `{"name":"` + strings.Repeat("n", 1<<20) + `"}`, status: 413},
		{name: "patch channel URL", method: "PATCH", path: chPath, body: map[string]any{"url": "gopher://example.com/"}, status: 422, field: "url"},
		{name: "patch channel secret", method: "PATCH", path: chPath, body: map[string]any{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, status: 422, field: "secret", mentions: []string{"rotate-secret"}},
		{name: "patch channel name empty", method: "PATCH", path: chPath, body: map[string]any{"name": "  "}, status: 422, field: "name"},
		{name: "patch channel malformed", method: "PATCH", path: chPath, body: `{"name": }`, status: 400},
		{name: "patch unknown channel", method: "PATCH", path: "/channels/ch_nope", body: map[string]any{"name": "x"}, status: 404},
		{name: "get unknown channel", method: "GET", path: "/channels/ch_nope", status: 404},
		{name: "delete unknown channel", method: "DELETE", path: "/channels/ch_nope", status: 404},
		{name: "secret of unknown channel", method: "GET", path: "/channels/ch_nope/secret", status: 404},
		{name: "rotate unknown channel", method: "POST", path: "/channels/ch_nope/rotate-secret", status: 404},
		{name: "rotate bad secret", method: "POST", path: chPath + "/rotate-secret", body: map[string]any{"secret": "whsec_short"}, status: 422, field: "secret"},

		// Channel tests and recovery.
		{name: "test without event_type", method: "POST", path: chPath + "/test", body: map[string]any{}, status: 422, field: "event_type"},
		{name: "test unknown event_type", method: "POST", path: chPath + "/test", body: map[string]any{"event_type": "nope.nothing"}, status: 422, field: "event_type"},
		{name: "test event_type not a string", method: "POST", path: chPath + "/test", body: `{"event_type": ["payment.succeeded"]}`, status: 422, field: "event_type"},
		{name: "test malformed", method: "POST", path: chPath + "/test", body: `{`, status: 400},
		{name: "test unknown channel", method: "POST", path: "/channels/ch_nope/test", body: map[string]any{"event_type": "payment.succeeded"}, status: 404},
		{name: "recover without since", method: "POST", path: chPath + "/recover", body: map[string]any{}, status: 422, field: "since", mentions: []string{"RFC 3339"}},
		{name: "recover since text", method: "POST", path: chPath + "/recover", body: map[string]any{"since": "yesterday"}, status: 422, field: "since", mentions: []string{"RFC 3339"}},
		{name: "recover since number", method: "POST", path: chPath + "/recover", body: map[string]any{"since": 5}, status: 422, field: "since"},
		{name: "recover since year 1", method: "POST", path: chPath + "/recover", body: map[string]any{"since": "0001-01-01T00:00:00Z"}, status: 422, field: "since"},
		{name: "recover unknown channel", method: "POST", path: "/channels/ch_nope/recover", body: map[string]any{"since": "2026-01-01T00:00:00Z"}, status: 404},

		// Subscriptions.
		{name: "subscription bad type pattern", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch, "event_types": []string{"payment.succeeded", "Payment Succeeded"}},
			status: 422, field: "event_types[1]", mentions: []string{"payment.*"}},
		{name: "subscription type not a string", method: "POST", path: "/subscriptions", body: `{"channel_id":"` + ch + `","event_types":["payment.succeeded", 3]}`,
			status: 422, field: "event_types[1]", mentions: []string{"string"}},
		{name: "subscription no types", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch}, status: 422, field: "event_types"},
		{name: "subscription empty types", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch, "event_types": []string{}}, status: 422, field: "event_types"},
		{name: "subscription types not an array", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch, "event_types": "*"}, status: 422, field: "event_types", mentions: []string{"array"}},
		{name: "subscription bad source", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch, "event_types": []string{"*"}, "sources": []string{"shop", "Admin Panel"}},
			status: 422, field: "sources[1]"},
		{name: "subscription bad filter", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch, "event_types": []string{"*"}, "filter": "data.total_amount >="},
			status: 422, field: "filter", mentions: []string{"data.total_amount >= 5000"}},
		{name: "subscription filter not boolean", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch, "event_types": []string{"*"}, "filter": `"text"`},
			status: 422, field: "filter"},
		{name: "subscription filter too long", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": ch, "event_types": []string{"*"}, "filter": strings.Repeat("true && ", 400) + "true"},
			status: 422, field: "filter"},
		{name: "subscription unknown channel", method: "POST", path: "/subscriptions", body: map[string]any{"channel_id": "ch_nope", "event_types": []string{"*"}},
			status: 422, field: "channel_id", mentions: []string{"POST /v1/tenants/acme/channels"}},
		{name: "subscription no channel", method: "POST", path: "/subscriptions", body: map[string]any{"event_types": []string{"*"}}, status: 422, field: "channel_id"},
		{name: "patch subscription filter", method: "PATCH", path: subPath, body: map[string]any{"filter": "))"}, status: 422, field: "filter"},
		{name: "patch subscription types", method: "PATCH", path: subPath, body: map[string]any{"event_types": []string{"*", "x"}}, status: 422, field: "event_types[1]"},
		{name: "patch subscription channel", method: "PATCH", path: subPath, body: map[string]any{"channel_id": "ch_nope"}, status: 422, field: "channel_id"},
		{name: "patch unknown subscription", method: "PATCH", path: "/subscriptions/sub_nope", body: map[string]any{"filter": ""}, status: 404},
		{name: "get unknown subscription", method: "GET", path: "/subscriptions/sub_nope", status: 404},
		{name: "delete unknown subscription", method: "DELETE", path: "/subscriptions/sub_nope", status: 404},

		// Event type toggles.
		{name: "toggle without enabled", method: "PATCH", path: "/event-types/payment.succeeded", body: map[string]any{}, status: 422, field: "enabled"},
		{name: "toggle enabled text", method: "PATCH", path: "/event-types/payment.succeeded", body: map[string]any{"enabled": "no"}, status: 422, field: "enabled", mentions: []string{"true or false"}},
		{name: "toggle malformed", method: "PATCH", path: "/event-types/payment.succeeded", body: `{"enabled": fals}`, status: 400},
		{name: "toggle unknown field", method: "PATCH", path: "/event-types/payment.succeeded", body: map[string]any{"enable": false}, status: 422, field: "enable"},
		{name: "toggle unknown type", method: "PATCH", path: "/event-types/nope.nothing", body: map[string]any{"enabled": false}, status: 404, mentions: []string{"event-types"}},
		{name: "get unknown type", method: "GET", path: "/event-types/nope.nothing", status: 404},

		// Custom event types.
		{name: "custom type bad name", method: "POST", path: "/event-types", body: map[string]any{"name": "Invoice Paid"}, status: 422, field: "name", mentions: []string{"invoice.paid"}},
		{name: "custom type built-in name", method: "POST", path: "/event-types", body: map[string]any{"name": "payment.succeeded"}, status: 422, field: "name", mentions: []string{"built-in"}},
		{name: "custom type title too long", method: "POST", path: "/event-types", body: map[string]any{"name": "ticket.sold", "title": strings.Repeat("t", 300)}, status: 422, field: "title", mentions: []string{"200"}},
		{name: "custom type description too long", method: "POST", path: "/event-types", body: map[string]any{"name": "ticket.sold", "description": strings.Repeat("d", 3000)}, status: 422, field: "description", mentions: []string{"2000"}},
		{name: "custom type schema invalid", method: "POST", path: "/event-types", body: map[string]any{"name": "ticket.sold", "schema": map[string]any{"type": "nonsense"}}, status: 422, field: "schema"},
		{name: "custom type schema not an object", method: "POST", path: "/event-types", body: map[string]any{"name": "ticket.sold", "schema": "object"}, status: 422, field: "schema", mentions: []string{"object"}},
		{name: "custom type schema remote ref", method: "POST", path: "/event-types", body: map[string]any{"name": "ticket.sold", "schema": map[string]any{"$ref": "https://example.com/s.json"}},
			status: 422, field: "schema", mentions: []string{"$defs"}},
		{name: "custom type example mismatch", method: "POST", path: "/event-types", body: map[string]any{"name": "ticket.sold",
			"schema": map[string]any{"type": "object", "properties": map[string]any{"seats": map[string]any{"type": "integer"}}}, "example": map[string]any{"seats": "two"}},
			status: 422, field: "example.seats"},
		{name: "custom type example not an object", method: "POST", path: "/event-types", body: map[string]any{"name": "ticket.sold", "example": []int{1}}, status: 422, field: "example"},
		{name: "custom type duplicate", method: "POST", path: "/event-types", body: map[string]any{"name": "invoice.paid"}, status: 409},

		// Tenants and keys.
		{name: "tenant unicode id", method: "POST", path: "/v1/tenants", admin: true, body: map[string]any{"id": "ácme", "name": "Acme"}, status: 422, field: "id"},
		{name: "tenant uppercase id", method: "POST", path: "/v1/tenants", admin: true, body: map[string]any{"id": "ACME", "name": "Acme"}, status: 422, field: "id"},
		{name: "tenant no name", method: "POST", path: "/v1/tenants", admin: true, body: map[string]any{"id": "newco"}, status: 422, field: "name"},
		{name: "tenant name not a string", method: "POST", path: "/v1/tenants", admin: true, body: `{"name": 5}`, status: 422, field: "name", mentions: []string{"string"}},
		{name: "tenant malformed", method: "POST", path: "/v1/tenants", admin: true, body: `{"name": "x"`, status: 400},
		{name: "tenant duplicate", method: "POST", path: "/v1/tenants", admin: true, body: map[string]any{"id": "acme", "name": "Again"}, status: 409},
		{name: "unknown tenant", method: "GET", path: "/v1/tenants/nope", admin: true, status: 404},
		{name: "unknown tenant channels", method: "POST", path: "/v1/tenants/nope/channels", admin: true, body: map[string]any{"name": "x", "url": recv}, status: 404},
		{name: "revoke unknown key", method: "DELETE", path: "/api-keys/key_nope", status: 404},

		// Events and deliveries.
		{name: "unknown event", method: "GET", path: "/events/evt_nope", status: 404},
		{name: "unknown delivery", method: "GET", path: "/deliveries/dlv_nope", status: 404},
		{name: "retry unknown delivery", method: "POST", path: "/deliveries/dlv_nope/retry", status: 404},
		{name: "unknown route", method: "GET", path: "/v1/nothing", status: 404},

		// List query parameters.
		{name: "deliveries bad status", method: "GET", path: "/deliveries?status=done", status: 400, field: "status", mentions: []string{"pending"}},
		{name: "deliveries bad since", method: "GET", path: "/deliveries?since=yesterday", status: 400, field: "since", mentions: []string{"RFC 3339"}},
		{name: "deliveries bad until", method: "GET", path: "/deliveries?until=2026-13-01T00:00:00Z", status: 400, field: "until"},
		{name: "deliveries since year 1", method: "GET", path: "/deliveries?since=0001-01-01T00:00:00Z", status: 400, field: "since"},
		{name: "events bad since", method: "GET", path: "/events?since=2026-01-01", status: 400, field: "since", mentions: []string{"RFC 3339"}},
		{name: "events bad until", method: "GET", path: "/events?until=now", status: 400, field: "until"},
		{name: "events limit zero", method: "GET", path: "/events?limit=0", status: 400, field: "limit"},
		{name: "channels limit too big", method: "GET", path: "/channels?limit=501", status: 400, field: "limit", mentions: []string{"500"}},
		{name: "subscriptions limit text", method: "GET", path: "/subscriptions?limit=ten", status: 400, field: "limit"},
		{name: "deliveries bad cursor", method: "GET", path: "/deliveries?cursor=!!!", status: 400, field: "cursor", mentions: []string{"next_cursor"}},
		{name: "tenants bad cursor", method: "GET", path: "/v1/tenants?cursor=%25%25", admin: true, status: 400, field: "cursor"},
	}

	before := h.state(tid, key, chPath, subPath, "/event-types", "/api-keys")
	for _, c := range cases {
		path := c.path
		if !strings.HasPrefix(path, "/v1/") {
			path = "/v1/tenants/acme" + path
		}
		k := key
		if c.admin {
			k = adminKey
		}
		r := h.call(c.method, path, k, c.body, c.headers...)
		wantProblem(t, c.name, r, c.status, c.field, c.mentions...)
		if after := h.state(tid, key, chPath, subPath, "/event-types", "/api-keys"); after != before {
			t.Fatalf("%s: rejected request changed what is stored", c.name)
		}
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want only the 1 of the setup event", n)
	}
}

// TestInputDataSizeBoundary: data of exactly 256 KiB is accepted and kept
// whole; one byte more is 413 naming data, and nothing is stored.
func TestInputDataSizeBoundary(t *testing.T) {
	h := startHerald(t)
	_, key := h.tenant("acme")
	h.must(201, "POST", "/v1/tenants/acme/event-types", key, map[string]any{"name": "blob.stored"})
	const limit = 256 << 10
	dataOf := func(n int) string { // {"pad":"xx…"} of n bytes
		return `{"pad":"` + strings.Repeat("x", n-10) + `"}`
	}
	body := func(n int) string { return `{"type":"blob.stored","data":` + dataOf(n) + `}` }

	for _, n := range []int{limit + 1, limit + 100, limit + 16<<10} {
		r := h.call("POST", "/v1/tenants/acme/events", key, body(n))
		wantProblem(t, fmt.Sprintf("data of %d bytes", n), r, 413, "data", "256 KiB")
	}
	if evs := h.must(200, "GET", "/v1/tenants/acme/events", key, nil)["data"].([]any); len(evs) != 0 {
		t.Fatalf("%d events stored by rejected publishes", len(evs))
	}
	for _, n := range []int{limit - 1, limit} {
		ans := h.must(202, "POST", "/v1/tenants/acme/events", key, body(n))
		e := h.must(200, "GET", "/v1/tenants/acme/events/"+ans["id"].(string), key, nil)
		raw, _ := json.Marshal(e["data"])
		if string(raw) != dataOf(n) {
			t.Errorf("data of %d bytes stored as %d bytes", n, len(raw))
		}
	}
	// Whitespace around data does not count.
	h.must(202, "POST", "/v1/tenants/acme/events", key, `{"type":"blob.stored","data":   `+dataOf(limit)+"\n\n  }")
}

// TestInputRefusedTargets: without the loopback allowance, URLs that reach
// this host, the private network or the metadata service are refused when
// saved, on field url, with the flag that would allow them.
func TestInputRefusedTargets(t *testing.T) {
	h := startHerald(t, func(c *server.Config) { c.AllowedTargetCIDRs = "" })
	_, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	port := rc.Listener.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndexByte(port, ':')+1:]
	for _, u := range []string{
		"http://127.0.0.1:" + port + "/hook",
		"http://localhost:" + port + "/hook",
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://0.0.0.0:" + port + "/",
		"https://192.168.1.1/",
	} {
		r := h.call("POST", "/v1/tenants/acme/channels", key, map[string]any{"name": "x", "url": u})
		wantProblem(t, u, r, 422, "url", "--allowed-target-cidrs")
	}
	// Numeric host names that some resolvers read as loopback addresses.
	for _, u := range []string{"http://127.1/", "http://2130706433/", "http://0x7f.1/"} {
		r := h.call("POST", "/v1/tenants/acme/channels", key, map[string]any{"name": "x", "url": u})
		wantProblem(t, u, r, 422, "url", "dotted-decimal")
	}
	// Patching an existing channel to a refused URL is refused the same way.
	m := h.call("POST", "/v1/tenants/acme/channels", key, map[string]any{"name": "x", "url": "https://93.184.215.14/hook"})
	if m.Status != 201 {
		t.Fatalf("public address refused: %s", m)
	}
	id := m.JSON()["id"].(string)
	r := h.call("PATCH", "/v1/tenants/acme/channels/"+id, key, map[string]any{"url": "http://169.254.169.254/"})
	wantProblem(t, "patch to metadata service", r, 422, "url", "metadata", "--allowed-target-cidrs")
	if got := h.must(200, "GET", "/v1/tenants/acme/channels/"+id, key, nil)["url"]; got != "https://93.184.215.14/hook" {
		t.Errorf("refused patch changed the URL to %v", got)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver on loopback got %d requests", n)
	}
}

// TestInputRefusedAtConnectTime: a channel saved while loopback was allowed
// is refused at connect time after the operator withdraws the allowance:
// the delivery fails as "refused" without retries and the receiver gets
// nothing; a test send says the same.
func TestInputRefusedAtConnectTime(t *testing.T) {
	dir := t.TempDir()
	h := startHeraldIn(t, dir)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL+"/hook", nil)
	h.subscribe(tid, key, ch, []string{"*"}, nil, "")
	h.stop()

	h2 := startHeraldIn(t, dir, func(c *server.Config) { c.AllowedTargetCIDRs = "" })
	ans := h2.publish(tid, key, "payment.succeeded", "shop", h2.example("payment.succeeded"))
	if ans["deliveries"].(float64) != 1 {
		t.Fatalf("publish answered %v", ans)
	}
	dlv := h2.deliveries(tid, key, "event_id="+ans["id"].(string))[0]["id"].(string)
	d := h2.waitStatus(tid, key, dlv, "failed", 1)
	att := d["attempt_log"].([]any)[0].(map[string]any)
	if att["error_class"] != "refused" || !strings.Contains(fmt.Sprint(att["error"]), "--allowed-target-cidrs") {
		t.Errorf("attempt %v, want error_class refused naming --allowed-target-cidrs", att)
	}
	h2.advance(48 * time.Hour)
	time.Sleep(100 * time.Millisecond)
	if d := h2.delivery(tid, key, dlv); d["attempts"].(float64) != 1 || d["status"] != "failed" {
		t.Errorf("refused delivery was retried: %v", d)
	}
	test := h2.must(200, "POST", "/v1/tenants/acme/channels/"+ch+"/test", key, map[string]any{"event_type": "order.completed"})
	if a := test["attempt"].(map[string]any); a["error_class"] != "refused" {
		t.Errorf("test send answered %v, want error_class refused", a)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver on loopback got %d requests", n)
	}
}

// TestIsolationTenantKeys: a tenant key reaches its own tenant only. On
// another tenant's paths, and with another tenant's ids under its own
// path, every route answers 404 and shows nothing of the other tenant.
func TestIsolationTenantKeys(t *testing.T) {
	h := startHerald(t)
	a, keyA := h.tenant("acme")
	b, keyB := h.tenant("bravo")
	const marker = "acme-private-7f3a"
	rcA, rcB := newReceiver(t, nil), newReceiver(t, nil)
	h.must(201, "POST", "/v1/tenants/acme/event-types", keyA, map[string]any{"name": "acme.private", "description": marker})
	chA, secretA := h.channel(a, keyA, rcA.URL+"/"+marker, map[string]any{"name": marker + "-channel", "headers": map[string]string{"X-Marker": marker}})
	subA := h.subscribe(a, keyA, chA, []string{"*"}, nil, `data.note == "`+marker+`"`)
	chB, _ := h.channel(b, keyB, rcB.URL, nil)
	subB := h.subscribe(b, keyB, chB, []string{"*"}, nil, "")
	evA := h.publish(a, keyA, "acme.private", "shop", map[string]any{"note": marker})["id"].(string)
	dA := h.deliveries(a, keyA, "event_id="+evA)[0]["id"].(string)
	h.waitStatus(a, keyA, dA, "succeeded", 1)
	evB := h.publish(b, keyB, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	dB := h.deliveries(b, keyB, "event_id="+evB)[0]["id"].(string)
	h.waitStatus(b, keyB, dB, "succeeded", 1)
	keysA := h.must(200, "GET", "/v1/tenants/acme/api-keys", keyA, nil)["data"].([]any)
	keyIDA := keysA[0].(map[string]any)["id"].(string)
	secrets := []string{marker, secretA, keyA, keyA[:10]}
	stateA := h.state(a, keyA, "/channels/"+chA+"/secret", "/event-types", "/api-keys")

	type route struct {
		method, path string
		body         any
	}
	resource := func(tenant string) []route {
		p := "/v1/tenants/" + tenant
		return []route{
			{"GET", p + "/api-keys/" + keyIDA, nil}, // no such route: 404 as well
			{"DELETE", p + "/api-keys/" + keyIDA, nil},
			{"GET", p + "/event-types/acme.private", nil},
			{"PATCH", p + "/event-types/acme.private", map[string]any{"enabled": false}},
			{"GET", p + "/channels/" + chA, nil},
			{"PATCH", p + "/channels/" + chA, map[string]any{"name": "stolen"}},
			{"DELETE", p + "/channels/" + chA, nil},
			{"GET", p + "/channels/" + chA + "/secret", nil},
			{"POST", p + "/channels/" + chA + "/rotate-secret", nil},
			{"POST", p + "/channels/" + chA + "/test", map[string]any{"event_type": "order.completed"}},
			{"POST", p + "/channels/" + chA + "/recover", map[string]any{"since": "2020-01-01T00:00:00Z"}},
			{"GET", p + "/subscriptions/" + subA, nil},
			{"PATCH", p + "/subscriptions/" + subA, map[string]any{"event_types": []string{"order.*"}}},
			{"DELETE", p + "/subscriptions/" + subA, nil},
			{"GET", p + "/events/" + evA, nil},
			{"GET", p + "/deliveries/" + dA, nil},
			{"POST", p + "/deliveries/" + dA + "/retry", nil},
		}
	}
	onA := append(resource("acme"), []route{
		{"GET", "/v1/tenants/acme", nil},
		{"GET", "/v1/tenants/acme/api-keys", nil},
		{"POST", "/v1/tenants/acme/api-keys", nil},
		{"GET", "/v1/tenants/acme/event-types", nil},
		{"POST", "/v1/tenants/acme/event-types", map[string]any{"name": "bravo.sneaky"}},
		{"PATCH", "/v1/tenants/acme/event-types/payment.succeeded", map[string]any{"enabled": false}},
		{"GET", "/v1/tenants/acme/channels", nil},
		{"POST", "/v1/tenants/acme/channels", map[string]any{"name": "x", "url": rcB.URL}},
		{"GET", "/v1/tenants/acme/subscriptions", nil},
		{"POST", "/v1/tenants/acme/subscriptions", map[string]any{"channel_id": chA, "event_types": []string{"*"}}},
		{"GET", "/v1/tenants/acme/events", nil},
		{"GET", "/v1/tenants/acme/events?type=acme.private", nil},
		{"POST", "/v1/tenants/acme/events", map[string]any{"type": "acme.private", "data": map[string]any{"note": "x"}}},
		{"POST", "/v1/tenants/acme/events/batch", map[string]any{"events": []any{map[string]any{"type": "acme.private", "data": map[string]any{}}}}},
		{"GET", "/v1/tenants/acme/deliveries", nil},
		{"GET", "/v1/tenants/acme/deliveries?channel_id=" + chA, nil},
	}...)
	check := func(what string, r response) {
		t.Helper()
		wantProblem(t, what, r, 404, "")
		for _, s := range secrets {
			if bytes.Contains(r.Body, []byte(s)) {
				t.Errorf("%s: answer shows %q of tenant acme: %s", what, s, r.Body)
			}
		}
	}
	for _, rt := range onA {
		check("bravo's key on "+rt.method+" "+rt.path, h.call(rt.method, rt.path, keyB, rt.body))
	}
	for _, rt := range resource("bravo") {
		check("acme's id under bravo: "+rt.method+" "+rt.path, h.call(rt.method, rt.path, keyB, rt.body))
	}
	// Even the operator key finds acme's resources only under acme.
	for _, rt := range resource("bravo") {
		if rt.method == "GET" {
			check("operator, acme's id under bravo: "+rt.path, h.call(rt.method, rt.path, adminKey, rt.body))
		}
	}
	// Another tenant's channel cannot be attached.
	r := h.call("POST", "/v1/tenants/bravo/subscriptions", keyB, map[string]any{"channel_id": chA, "event_types": []string{"*"}})
	wantProblem(t, "bravo subscribes acme's channel", r, 422, "channel_id")
	r = h.call("PATCH", "/v1/tenants/bravo/subscriptions/"+subB, keyB, map[string]any{"channel_id": chA})
	wantProblem(t, "bravo moves its subscription to acme's channel", r, 422, "channel_id")
	// bravo's own lists and types show nothing of acme.
	for _, p := range []string{"/deliveries?channel_id=" + chA, "/deliveries?event_id=" + evA, "/events?type=acme.private", "/event-types", "/channels", "/subscriptions", "/api-keys"} {
		r := h.call("GET", "/v1/tenants/bravo"+p, keyB, nil)
		if r.Status != 200 {
			t.Errorf("bravo GET %s: %s", p, r)
		}
		for _, s := range append(secrets, chA, evA, dA, "acme.private") {
			if bytes.Contains(r.Body, []byte(s)) {
				t.Errorf("bravo GET %s shows %q of acme", p, s)
			}
		}
	}
	r = h.call("POST", "/v1/tenants/bravo/events", keyB, map[string]any{"type": "acme.private", "data": map[string]any{}})
	wantProblem(t, "bravo publishes acme's custom type", r, 422, "type")

	// acme is untouched: same state, its key works, its receiver got only its event.
	if got := h.state(a, keyA, "/channels/"+chA+"/secret", "/event-types", "/api-keys"); got != stateA {
		t.Errorf("acme's state changed by bravo's requests")
	}
	if n := len(rcA.requests()); n != 1 {
		t.Errorf("acme's receiver got %d requests, want 1", n)
	}

	// The operator key works on both tenants.
	h.must(200, "GET", "/v1/tenants/acme/channels/"+chA, adminKey, nil)
	h.must(200, "GET", "/v1/tenants/bravo/channels/"+chB, adminKey, nil)
	h.must(200, "GET", "/v1/tenants/acme/events/"+evA, adminKey, nil)
	h.must(200, "GET", "/v1/tenants/bravo/deliveries/"+dB, adminKey, nil)

	// Operator routes refuse tenant keys.
	for _, rt := range []route{{"POST", "/v1/tenants", map[string]any{"id": "evil", "name": "Evil"}}, {"GET", "/v1/tenants", nil}} {
		r := h.call(rt.method, rt.path, keyA, rt.body)
		wantProblem(t, "tenant key on "+rt.method+" "+rt.path, r, 403, "", "operator key")
	}
	wantProblem(t, "operator created a tenant for a tenant key", h.call("GET", "/v1/tenants/evil", adminKey, nil), 404, "")

	// Missing, malformed and unknown keys.
	for _, hdr := range []string{"", "Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "bearer " + keyA, "Token " + keyA} {
		req, _ := http.NewRequest("GET", h.base+"/v1/tenants/acme/channels", nil)
		if hdr != "" {
			req.Header.Set("Authorization", hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		r := response{Status: resp.StatusCode, Header: resp.Header, Body: body.Bytes()}
		wantProblem(t, fmt.Sprintf("Authorization %q", hdr), r, 401, "", "Bearer")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: WWW-Authenticate %q", hdr, r.Header.Get("WWW-Authenticate"))
		}
	}
	for _, k := range []string{"hk_unknown", keyA + "x", strings.Repeat("k", 10000), adminKey + " "} {
		r := h.call("GET", "/v1/tenants/acme/channels", k, nil)
		if k == adminKey+" " { // surrounding space is trimmed: the key is valid
			if r.Status != 200 {
				t.Errorf("operator key with a trailing space: %s", r)
			}
			continue
		}
		wantProblem(t, "unknown key", r, 401, "")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("unknown key: no WWW-Authenticate")
		}
	}

	// A revoked key stops working at once; the others keep working.
	extra := h.must(201, "POST", "/v1/tenants/acme/api-keys", keyA, nil)
	extraKey, extraID := extra["api_key"].(string), extra["id"].(string)
	h.must(200, "GET", "/v1/tenants/acme/channels", extraKey, nil)
	listed := h.must(200, "GET", "/v1/tenants/acme/api-keys", keyA, nil)
	if bytes.Contains(h.call("GET", "/v1/tenants/acme/api-keys", keyA, nil).Body, []byte(extraKey)) {
		t.Errorf("key list shows a secret: %v", listed)
	}
	h.must(204, "DELETE", "/v1/tenants/acme/api-keys/"+extraID, keyA, nil)
	r = h.call("GET", "/v1/tenants/acme/channels", extraKey, nil)
	wantProblem(t, "revoked key", r, 401, "", "revoked")
	h.must(200, "GET", "/v1/tenants/acme/channels", keyA, nil)
	// The operator can revoke a tenant's key too.
	h.must(204, "DELETE", "/v1/tenants/acme/api-keys/"+keyIDA, adminKey, nil)
	wantProblem(t, "key revoked by the operator", h.call("GET", "/v1/tenants/acme/channels", keyA, nil), 401, "")
	h.must(200, "GET", "/v1/tenants/bravo/channels", keyB, nil)
}

var generatedKey = regexp.MustCompile(`hk_admin_[A-Za-z0-9_-]{20,}`)

// TestOperatorKeyGenerated: with no operator key configured, Herald
// generates one, prints it once, and keeps accepting it after a restart on
// the same data directory without printing it again.
func TestOperatorKeyGenerated(t *testing.T) {
	dir := t.TempDir()
	var notice bytes.Buffer
	h := startHeraldIn(t, dir, func(c *server.Config) { c.AdminKey = ""; c.Notice = &notice })
	keys := generatedKey.FindAllString(notice.String(), -1)
	if len(keys) != 1 {
		t.Fatalf("notice shows %d keys, want 1: %q", len(keys), notice.String())
	}
	key := keys[0]
	wantProblem(t, "the test's usual operator key", h.call("GET", "/v1/tenants", adminKey, nil), 401, "")
	h.must(201, "POST", "/v1/tenants", key, map[string]any{"id": "acme", "name": "Acme"})
	h.stop()

	var again bytes.Buffer
	h2 := startHeraldIn(t, dir, func(c *server.Config) { c.AdminKey = ""; c.Notice = &again })
	if again.Len() != 0 {
		t.Errorf("restart printed %q, want nothing", again.String())
	}
	ts := h2.must(200, "GET", "/v1/tenants", key, nil)["data"].([]any)
	if len(ts) != 1 {
		t.Errorf("tenants after restart: %v", ts)
	}
	h2.stop()

	// A configured key takes over; the generated one stops working.
	h3 := startHeraldIn(t, dir)
	wantProblem(t, "generated key with a configured one", h3.call("GET", "/v1/tenants", key, nil), 401, "")
	h3.must(200, "GET", "/v1/tenants", adminKey, nil)
}

// hostileBodies are request bodies built to break a JSON API: wrong shapes,
// wrong types for every field, extreme sizes, depths and numbers, bytes
// that are not text, and values that try to smuggle headers.
func hostileBodies(recv string) []struct {
	name string
	body string
} {
	type hb = struct {
		name string
		body string
	}
	deepArr := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	deepObj := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	deepData := `{"type":"payment.succeeded","data":{"a":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `}}`
	mb := strings.Repeat("n", 1_000_000)
	out := []hb{
		{"empty", ""},
		{"whitespace", " \n\t "},
		{"null", "null"},
		{"array", "[]"},
		{"array of objects", `[{"name":"x","url":"` + recv + `"}]`},
		{"string", `"hello"`},
		{"number", "123"},
		{"true", "true"},
		{"open brace", "{"},
		{"close brace", "}"},
		{"BOM", "\xef\xbb\xbf{}"},
		{"deep arrays 10000", deepArr},
		{"deep objects 10000", deepObj},
		{"deep arrays in data 9000", deepData},
		{"huge exponent", `{"timeout_s": 1e999999999, "max_in_flight": 1e999999999, "rate_limit_per_sec": 1e999999999}`},
		{"long number", `{"timeout_s": 1` + strings.Repeat("0", 100000) + `}`},
		{"tiny number", `{"rate_limit_per_sec": 1e-999999999}`},
		{"negative zero", `{"timeout_s": -0, "rate_limit_per_sec": -0.0}`},
		{"min int", `{"max_in_flight": -9223372036854775808, "timeout_s": -9223372036854775809}`},
		{"raw NUL", "{\"name\":\"a\x00b\"}"},
		{"escaped NUL", `{"name":"a\u0000b","url":"` + recv + `","id":"a\u0000b","type":"payment.succeeded\u0000","data":{"k\u0000":"\u0000"}}`},
		{"invalid UTF-8 key and value", "{\"name\":\"\xff\xfe\",\"\xc3\x28\":1}"},
		{"invalid UTF-8 in data", "{\"type\":\"payment.succeeded\",\"data\":{\"\xff\":\"\xc3\x28\"}}"},
		{"lone surrogate", `{"name":"\ud800","url":"` + recv + `"}`},
		{"1 MB name", `{"name":"` + mb + `","url":"` + recv + `","id":"x"}`},
		{"1 MB id", `{"id":"` + mb + `","name":"x"}`},
		{"1 MB filter", `{"channel_id":"x","event_types":["*"],"filter":"` + mb + `"}`},
		{"1 MB event type", `{"type":"` + mb + `","data":{}}`},
		{"2 MB name", `{"name":"` + mb + mb + `"}`},
		{"100k char key", `{"` + strings.Repeat("k", 100000) + `":1}`},
		{"duplicate keys", `{"name":"a","name":"b","url":"ftp://x/","url":"` + recv + `","enabled":true,"enabled":false}`},
		{"policy delays 1e308", `{"policy": {"delays_s": [1e308]}}`},
		{"policy delays huge list", `{"policy": {"delays_s": [` + strings.Repeat("1,", 100000) + `1]}}`},
		{"policy nested", `{"policy": {"policy": {"policy": "standard"}}}`},
		{"unicode tenant id", `{"id":"tenant-ü","name":"x"}`},
		{"japanese tenant id", `{"id":"テナント","name":"x"}`},
		{"RTL override tenant id", "{\"id\":\"acme\u202egpj\",\"name\":\"x\"}"},
		{"header name CRLF", `{"name":"x","url":"` + recv + `","headers":{"X-A\r\nInjected: 1":"v"}}`},
		{"header value CRLF", `{"name":"x","url":"` + recv + `","headers":{"X-A":"v\r\nInjected: 1"}}`},
		{"header name empty", `{"name":"x","url":"` + recv + `","headers":{"":"v"}}`},
		{"many headers", `{"name":"x","url":"` + recv + `","headers":{` + manyHeaders(1000) + `}}`},
		{"URL zone", `{"name":"x","url":"http://[fe80::1%25eth0]:80/"}`},
		{"URL numeric host", `{"name":"x","url":"http://0x7f.1/"}`},
		{"URL javascript", `{"name":"x","url":"javascript:alert(1)"}`},
		{"URL file", `{"name":"x","url":"file:///etc/passwd"}`},
		{"URL control chars", `{"name":"x","url":"http://127.0.0.1/\u0000\r\n"}`},
		{"URL 1 MB", `{"name":"x","url":"http://127.0.0.1/` + mb[:900000] + `"}`},
		{"filter memory bomb", `{"channel_id":"x","event_types":["*"],"filter":"len(1..100000000) > 0"}`},
		{"filter deep parens", `{"channel_id":"x","event_types":["*"],"filter":"` + strings.Repeat("(", 1000) + "true" + strings.Repeat(")", 1000) + `"}`},
		{"filter regex", `{"channel_id":"x","event_types":["*"],"filter":"data.a matches \"(a+)+$\""}`},
		{"many sources", `{"channel_id":"x","event_types":["*"],"sources":[` + strings.Repeat(`"a",`, 50000) + `"a"]}`},
		{"many event types", `{"channel_id":"x","event_types":[` + strings.Repeat(`"*",`, 50000) + `"*"]}`},
		{"schema self ref", `{"name":"hostile.selfref","schema":{"$ref":"#"}}`},
		{"schema huge minLength", `{"name":"hostile.minlen","schema":{"type":"object","properties":{"a":{"type":"string","minLength":1e308}}}}`},
		{"schema tiny multipleOf", `{"name":"hostile.multiple","schema":{"type":"object","properties":{"a":{"multipleOf":1e-308}}},"example":{"a":1e308}}`},
		{"schema deep", `{"name":"hostile.deep","schema":` + strings.Repeat(`{"properties":{"a":`, 3000) + "{}" + strings.Repeat("}}", 3000) + `}`},
		{"schema bad regex", `{"name":"hostile.regex","schema":{"type":"string","pattern":"(?<=x)"}}`},
		{"schema exponential anyOf", `{"name":"hostile.fan","schema":` + fanSchema(40) + `}`},
		{"schema doubling recursion", `{"name":"hostile.double","schema":{"allOf":[{"properties":{"a":{"$ref":"#"}}},{"properties":{"a":{"$ref":"#"}}}]}}`},
		{"since far future", `{"since":"9999-12-31T23:59:59Z"}`},
		{"since far past", `{"since":"0001-01-01T00:00:00Z"}`},
		{"since with offset", `{"since":"2026-01-01T00:00:00+14:00"}`},
		{"occurred_at far future", `{"type":"payment.succeeded","occurred_at":"9999-12-31T23:59:59.999999999Z","data":{}}`},
		{"occurred_at leap second", `{"type":"payment.succeeded","occurred_at":"2016-12-31T23:59:60Z","data":{}}`},
		{"events 1001 nulls", `{"events":[` + strings.Repeat("null,", 1000) + `null]}`},
		{"events nested batch", `{"events":[{"events":[]}]}`},
		{"secret huge", `{"secret":"whsec_` + strings.Repeat("A", 10000) + `"}`},
		{"secret empty", `{"secret":""}`},
		{"enabled null", `{"enabled":null}`},
		{"disabled_reason 500 kB", `{"enabled":false,"disabled_reason":"` + mb[:500000] + `"}`},
		{"event_type path traversal", `{"event_type":"../../etc/passwd"}`},
		{"trailing garbage", `{"name":"x"}garbage`},
		{"two objects", `{}{}`},
	}
	// Every field of every route with every wrong JSON type.
	fields := []string{"id", "name", "url", "kind", "policy", "timeout_s", "headers", "enabled", "disabled_reason",
		"max_in_flight", "rate_limit_per_sec", "secret", "channel_id", "event_types", "sources", "filter",
		"type", "source", "occurred_at", "data", "idempotency_key", "events", "since", "event_type",
		"title", "description", "schema", "example"}
	wrong := map[string]string{"array": `[1,"a",{}]`, "object": `{"a":[1]}`, "number": `-1.5e300`, "string": `"\u0000x"`, "bool": `true`}
	for _, f := range fields {
		for kind, v := range wrong {
			out = append(out, hb{f + " as " + kind, `{"` + f + `":` + v + `}`})
		}
	}
	return out
}

// fanSchema is n levels of anyOf whose two branches lead to the same next
// level, so a naive validator does 2^n work.
func fanSchema(n int) string {
	var b strings.Builder
	b.WriteString(`{"$ref":"#/$defs/d0","$defs":{`)
	for i := range n {
		fmt.Fprintf(&b, `"d%d":{"anyOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]},`, i, i+1, i+1)
	}
	fmt.Fprintf(&b, `"d%d":false}}`, n)
	return b.String()
}

func manyHeaders(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"X-H%d":"v"`, i)
	}
	return strings.Join(parts, ",")
}

// TestInputHostileBodies sends every hostile body to every route that takes
// a body: never a 5xx, every error is problem+json, and the server is still
// up and serving afterwards.
func TestInputHostileBodies(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, nil)
	sub := h.subscribe(tid, key, ch, []string{"*"}, nil, `data.total_amount >= 0`)
	evt := h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))
	dlv := h.deliveries(tid, key, "event_id="+evt["id"].(string))[0]["id"].(string)
	h.waitStatus(tid, key, dlv, "succeeded", 1)

	base := "/v1/tenants/acme"
	routes := []struct {
		method, path string
		admin        bool
	}{
		{"POST", "/v1/tenants", true},
		{"POST", base + "/api-keys", false},
		{"POST", base + "/event-types", false},
		{"PATCH", base + "/event-types/payment.succeeded", false},
		{"POST", base + "/channels", false},
		{"PATCH", base + "/channels/" + ch, false},
		{"POST", base + "/channels/" + ch + "/rotate-secret", false},
		{"POST", base + "/channels/" + ch + "/test", false},
		{"POST", base + "/channels/" + ch + "/recover", false},
		{"POST", base + "/subscriptions", false},
		{"PATCH", base + "/subscriptions/" + sub, false},
		{"POST", base + "/events", false},
		{"POST", base + "/events/batch", false},
		{"POST", base + "/deliveries/" + dlv + "/retry", false},
	}
	bodies := hostileBodies(rc.URL)
	if len(bodies) < 40 {
		t.Fatalf("only %d hostile bodies", len(bodies))
	}
	statuses := map[int]int{}
	for _, rt := range routes {
		k := key
		if rt.admin {
			k = adminKey
		}
		for _, b := range bodies {
			what := fmt.Sprintf("%s %s with %s", rt.method, rt.path, b.name)
			start := time.Now()
			r := h.call(rt.method, rt.path, k, []byte(b.body))
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Logf("SLOW %v: %s -> %d", d, what, r.Status)
			}
			statuses[r.Status]++
			if r.Status >= 500 {
				t.Errorf("%s: %s", what, trunc(r))
				continue
			}
			if r.Status >= 400 {
				isProblem(t, what, r)
			}
		}
	}
	t.Logf("%d requests; statuses %v", len(routes)*len(bodies), statuses)

	// Publish events of every hostile custom type that was accepted, with
	// data that exercises the schemas.
	for _, typ := range []string{"hostile.selfref", "hostile.minlen", "hostile.multiple", "hostile.deep", "hostile.regex", "hostile.fan", "hostile.double"} {
		for _, data := range []string{`{}`, `{"a":"x"}`, `{"a":1e308}`, `{"a":` + strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + `}`} {
			r := h.call("POST", base+"/events", key, `{"type":"`+typ+`","data":`+data+`}`)
			if r.Status >= 500 {
				t.Errorf("publish %s: %s", typ, trunc(r))
			} else if r.Status >= 400 {
				isProblem(t, "publish "+typ, r)
			}
		}
	}
	// Schemas that would make validation take hours refuse the data at once.
	for typ, data := range map[string]string{"hostile.fan": `{}`, "hostile.double": strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)} {
		h.must(200, "GET", base+"/event-types/"+typ, key, nil)
		start := time.Now()
		r := h.call("POST", base+"/events", key, `{"type":"`+typ+`","data":`+data+`}`)
		wantProblem(t, "publish "+typ, r, 422, "data", "too costly")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("publish %s took %v", typ, d)
		}
	}
	// The hostile filters were saved or refused; either way publishing
	// still works and runs them.
	r := h.call("POST", base+"/subscriptions", key, map[string]any{"channel_id": ch, "event_types": []string{"*"}, "filter": "len(1..100000000) > 0"})
	if r.Status >= 500 {
		t.Errorf("memory-bomb filter: %s", r)
	}
	h.must(202, "POST", base+"/events", key, map[string]any{"type": "payment.succeeded", "data": h.example("payment.succeeded")})

	h.must(200, "GET", "/healthz", "", nil)
	h.must(200, "GET", "/readyz", "", nil)
	h.must(200, "GET", base+"/channels/"+ch, key, nil)

	// However often a secret is rotated, a request carries a bounded
	// number of signatures.
	for range 20 {
		h.must(200, "POST", base+"/channels/"+ch+"/rotate-secret", key, nil)
	}
	h.must(200, "PATCH", base+"/channels/"+ch, key, map[string]any{"enabled": true, "url": rc.URL, "headers": map[string]string{}})
	before := len(rc.requests())
	test := h.call("POST", base+"/channels/"+ch+"/test", key, map[string]any{"event_type": "payment.succeeded"})
	if test.Status != 200 {
		t.Fatalf("test send: %s", test)
	}
	got := rc.waitN(t, before+1)
	if sigs := strings.Fields(got[len(got)-1].Header.Get("webhook-signature")); len(sigs) > 3 {
		t.Errorf("after 20 rotations a request carries %d signatures, want at most 3", len(sigs))
	}
}
