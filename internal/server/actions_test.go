package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/server"
	"github.com/heraldhq/herald/internal/testenv"
)

// Action channels against local servers that implement the documented
// contracts: Hipcall's REST API v3 (Bearer token, required fields, 201 with
// {"data"}, 422 with {"errors"}) and Slack's incoming webhooks (JSON with
// "text" → 200 "ok", anything else → 400 "invalid_payload").

const hipcallToken = "hc-test-token-9f8e7d6c5b4a"

// fakeHipcall is a Hipcall API v3 with one valid token.
type fakeHipcall struct {
	*httptest.Server
	mu   sync.Mutex
	got  []hipcallRequest
	seen chan struct{}
}

type hipcallRequest struct {
	Path   string
	Header http.Header
	Body   map[string]any
}

func newFakeHipcall(t *testing.T) *fakeHipcall {
	f := &fakeHipcall{seen: make(chan struct{}, 100)}
	required := map[string]string{"/api/v3/contacts": "first_name", "/api/v3/companies": "name", "/api/v3/tasks": "name"}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		f.mu.Lock()
		f.got = append(f.got, hipcallRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		f.seen <- struct{}{}
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+hipcallToken {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":{"detail":"Unauthorized"}}`)
			return
		}
		field, ok := required[r.URL.Path]
		if !ok || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"errors":{"detail":"Not Found"}}`)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" || body == nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"errors":{"detail":"Bad Request"}}`)
			return
		}
		if s, _ := body[field].(string); s == "" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"errors":{"`+field+`":["String length is smaller than minLength: 1"]}}`)
			return
		}
		data := map[string]any{"id": 24}
		for k, v := range body {
			data[k] = v
		}
		out, _ := json.Marshal(map[string]any{"data": data})
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(out)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeHipcall) requests() []hipcallRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hipcallRequest(nil), f.got...)
}

// fakeSlack is an incoming webhook: a POST of JSON with a string "text"
// is accepted with 200 "ok", anything else refused with 400
// "invalid_payload".
type fakeSlack struct {
	*httptest.Server
	mu    sync.Mutex
	texts []string
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var m map[string]any
		text, isText := "", false
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") && json.Unmarshal(raw, &m) == nil {
			text, isText = m["text"].(string)
		}
		if !isText {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "invalid_payload")
			return
		}
		f.mu.Lock()
		f.texts = append(f.texts, text)
		f.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSlack) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.texts...)
}

// startHeraldLogged is startHerald with the log kept, to check that no
// secret ever reaches it.
func startHeraldLogged(t *testing.T) (*herald, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	clock := &testenv.Clock{}
	cfg := server.Config{
		Listen: "127.0.0.1:0", DataDir: t.TempDir(), AdminKey: adminKey, AllowedTargetCIDRs: "127.0.0.0/8",
		PollInterval: 25 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Synchronous: "NORMAL", Clock: clock,
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("open server: %v", err)
	}
	h := &herald{t: t, srv: srv, base: "http://" + srv.Addr(), clock: clock, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- srv.Run(ctx) }()
	t.Cleanup(h.stop)
	return h, logs
}

// actionChannel creates an action channel and returns its id and answer.
func (h *herald) actionChannel(tenant, key string, body map[string]any) (string, map[string]any) {
	h.t.Helper()
	body["kind"] = "action"
	if body["name"] == nil {
		body["name"] = "action"
	}
	m := h.must(201, "POST", "/v1/tenants/"+tenant+"/channels", key, body)
	return m["id"].(string), m
}

func hipcallChannel(h *herald, tenant, key, base, op, token string) (string, map[string]any) {
	return h.actionChannel(tenant, key, map[string]any{"preset": "hipcall", "url": base,
		"action": map[string]any{"secrets": map[string]string{"token": token}, "options": map[string]string{"operation": op}}})
}

func TestActionHipcallContactTaskCompany(t *testing.T) {
	h, logs := startHeraldLogged(t)
	hc := newFakeHipcall(t)
	tid, key := h.tenant("acme")

	contact, ans := hipcallChannel(h, tid, key, hc.URL, "create_contact", hipcallToken)
	act := ans["action"].(map[string]any)
	if ans["url"] != hc.URL+"/api/v3/contacts" || act["preset"] != "hipcall" || act["method"] != "POST" || ans["secret"] != nil {
		t.Fatalf("created %v", ans)
	}
	if act["secrets"].(map[string]any)["token"] != "***" {
		t.Fatalf("secrets shown as %v", act["secrets"])
	}
	h.subscribe(tid, key, contact, []string{"customer.created"}, nil, "")
	task, _ := hipcallChannel(h, tid, key, hc.URL, "create_task", hipcallToken)
	h.subscribe(tid, key, task, []string{"order.completed"}, nil, "")
	company, _ := hipcallChannel(h, tid, key, hc.URL+"/", "create_company", hipcallToken)
	h.subscribe(tid, key, company, []string{"customer.created"}, nil, "")

	cust := h.publish(tid, key, "customer.created", "shop", h.example("customer.created"))["id"].(string)
	h.waitStatus(tid, key, h.deliveryFor(tid, key, cust, contact), "succeeded", 1)
	h.waitStatus(tid, key, h.deliveryFor(tid, key, cust, company), "succeeded", 1)
	order := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	d := h.waitStatus(tid, key, h.deliveryFor(tid, key, order, task), "succeeded", 1)
	if log := attemptLog(t, d); num(log[0]["status_code"]) != 201 || !strings.Contains(log[0]["response_body"].(string), `"resource_type"`) && !strings.Contains(log[0]["response_body"].(string), `"data"`) {
		t.Fatalf("attempt log %v", log)
	}

	byPath := map[string]hipcallRequest{}
	for _, r := range hc.requests() {
		byPath[r.Path] = r
		if r.Header.Get("Authorization") != "Bearer "+hipcallToken || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s headers %v", r.Path, r.Header)
		}
		if r.Header.Get("webhook-signature") != "" {
			t.Errorf("%s carries a webhook signature; actions do not sign", r.Path)
		}
	}
	c := byPath["/api/v3/contacts"].Body
	wantContact := `{"emails":["kenji.tanaka@example.com"],"external_id":"ct_78004","first_name":"Kenji","last_name":"Tanaka","phones":[{"number":"+81355550187"}]}`
	if got, _ := json.Marshal(c); string(got) != wantContact {
		t.Errorf("contact body\n got %s\nwant %s", got, wantContact)
	}
	if co := byPath["/api/v3/companies"].Body; co["name"] != "Kenji Tanaka" || co["external_id"] != "ct_78004" {
		t.Errorf("company body %v", co)
	}
	tk := byPath["/api/v3/tasks"].Body
	if tk["name"] != "Follow up: Order #0000123456 completed — 18.00 GBP — mrbuyer@gmail.com" ||
		!strings.Contains(tk["description"].(string), "order.completed event "+order) {
		t.Errorf("task body %v", tk)
	}

	// The token is in no API answer about the channels or deliveries.
	for _, path := range []string{"/channels", "/channels/" + contact, "/deliveries?channel_id=" + contact, "/deliveries/" + h.deliveryFor(tid, key, cust, contact)} {
		r := h.call("GET", "/v1/tenants/"+tid+path, key, nil)
		if r.Status != 200 || strings.Contains(string(r.Body), hipcallToken) {
			t.Errorf("GET %s: %d, shows the token: %v", path, r.Status, strings.Contains(string(r.Body), hipcallToken))
		}
	}
	if strings.Contains(logs.String(), hipcallToken) {
		t.Errorf("the log shows the token")
	}
}

func TestActionSlackMessage(t *testing.T) {
	h := startHerald(t)
	slack := newFakeSlack(t)
	tid, key := h.tenant("acme")
	ch, ans := h.actionChannel(tid, key, map[string]any{"preset": "slack", "url": slack.URL + "/services/T000/B000/XXXX"})
	if body, _ := json.Marshal(ans["action"].(map[string]any)["body"]); string(body) != `{"text":"{{ summary() }}"}` {
		t.Fatalf("slack body template %s", body)
	}
	h.subscribe(tid, key, ch, []string{"order.completed", "payment.succeeded"}, nil, "")
	order := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	d := h.waitStatus(tid, key, h.deliveryFor(tid, key, order, ch), "succeeded", 1)
	if log := attemptLog(t, d); log[0]["response_body"] != "ok" {
		t.Fatalf("attempt log %v", log)
	}
	pay := h.publish(tid, key, "payment.succeeded", "shop", h.example("payment.succeeded"))["id"].(string)
	h.waitStatus(tid, key, h.deliveryFor(tid, key, pay, ch), "succeeded", 1)
	got := slack.messages()
	if len(got) != 2 || got[0] != "Order #0000123456 completed — 18.00 GBP — mrbuyer@gmail.com" ||
		got[1] != "Payment #pay_2IjeQm4hqU6RA4Z4kwDee succeeded — 4.00 USD — test@acme.com" {
		t.Fatalf("slack got %q", got)
	}

	// A template the webhook refuses (no text) fails permanently with
	// Slack's answer in the log.
	h.must(200, "PATCH", "/v1/tenants/"+tid+"/channels/"+ch, key, map[string]any{"action": map[string]any{"body": map[string]any{"message": "{{ summary() }}"}}})
	bad := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	d = h.waitStatus(tid, key, h.deliveryFor(tid, key, bad, ch), "failed", 1)
	if log := attemptLog(t, d); num(log[0]["status_code"]) != 400 || log[0]["response_body"] != "invalid_payload" {
		t.Fatalf("attempt log %v", log)
	}

	// The channel test sends the type's example through the template.
	h.must(200, "PATCH", "/v1/tenants/"+tid+"/channels/"+ch, key, map[string]any{"preset": "slack"})
	test := h.must(200, "POST", "/v1/tenants/"+tid+"/channels/"+ch+"/test", key, map[string]any{"event_type": "refund.succeeded"})
	if att := test["attempt"].(map[string]any); num(att["status_code"]) != 200 {
		t.Fatalf("test answered %v", test)
	}
	if got := slack.messages(); got[len(got)-1] != "Refund #ref_abc succeeded — 4.00 USD — test@acme.com" {
		t.Fatalf("test sent %q", got)
	}
}

func TestActionTemplateErrorsAtSave(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	base := "/v1/tenants/" + tid + "/channels"
	cases := []struct {
		body   map[string]any
		field  string
		detail string
	}{
		{map[string]any{"kind": "action", "name": "a", "url": "http://127.0.0.1:9/x", "action": map[string]any{"body": map[string]any{"first_name": "{{ customer().first_name + }}"}}},
			"action.body", "{{ customer().first_name + }}"},
		{map[string]any{"kind": "action", "name": "a", "url": "http://127.0.0.1:9/x", "action": map[string]any{"body": map[string]any{"t": "{{ secrets.token }}"}, "secrets": map[string]string{"token": "abcdef"}}},
			"action.body", "headers and the URL only"},
		{map[string]any{"kind": "action", "name": "a", "url": "http://127.0.0.1:9/x", "action": map[string]any{"headers": map[string]string{"Authorization": "Bearer {{ secrets.tok }}"}}},
			"action.headers.Authorization", `there is no secret`},
		{map[string]any{"kind": "action", "name": "a", "url": "http://127.0.0.1:9/x", "action": map[string]any{"method": "TRACE"}},
			"action.method", "not allowed"},
		{map[string]any{"preset": "hipcall", "name": "a", "url": "http://127.0.0.1:9", "action": map[string]any{"secrets": map[string]string{"token": "abcdef"}, "options": map[string]string{"operation": "create_deal"}}},
			"action.options.operation", "create_contact"},
		{map[string]any{"preset": "hipcall", "name": "a", "url": "http://127.0.0.1:9", "action": map[string]any{"options": map[string]string{"operation": "create_task"}}},
			"action.secrets.token", "required"},
		{map[string]any{"kind": "action", "name": "a", "url": "http://{{ data.host }}/x"},
			"url", "after the host"},
		{map[string]any{"kind": "action", "name": "a", "url": "http://127.0.0.1:9/x", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
			"secret", "do not sign"},
		{map[string]any{"name": "a", "url": "http://127.0.0.1:9/x", "action": map[string]any{"method": "POST"}, "kind": "webhook"},
			"action", "only for channels of kind"},
	}
	for _, c := range cases {
		r := h.call("POST", base, key, c.body)
		if r.Status != 422 || r.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(r.Body), `"field":"`+c.field+`"`) || !strings.Contains(string(r.Body), c.detail) {
			t.Errorf("%v: got %s, want 422 on %s mentioning %q", c.body, r, c.field, c.detail)
		}
	}
	// A patch is checked the same way and changes nothing when refused.
	ch, _ := h.actionChannel(tid, key, map[string]any{"url": "http://127.0.0.1:9/x", "action": map[string]any{"body": map[string]any{"a": "{{ id }}"}}})
	r := h.call("PATCH", base+"/"+ch, key, map[string]any{"action": map[string]any{"body": map[string]any{"a": "{{ nope( }}"}}})
	if r.Status != 422 || !strings.Contains(string(r.Body), "action.body") {
		t.Fatalf("patch: %s", r)
	}
	got := h.must(200, "GET", base+"/"+ch, key, nil)
	if b, _ := json.Marshal(got["action"].(map[string]any)["body"]); string(b) != `{"a":"{{ id }}"}` {
		t.Fatalf("refused patch changed the body to %s", b)
	}
	if r := h.call("POST", base+"/"+ch+"/rotate-secret", key, nil); r.Status != 409 {
		t.Fatalf("rotate-secret of an action: %s", r)
	}
}

func TestActionHipcall422IsPermanent(t *testing.T) {
	h := startHerald(t)
	hc := newFakeHipcall(t)
	tid, key := h.tenant("acme")
	// The preset's body overridden with one that lacks first_name.
	ch, _ := h.actionChannel(tid, key, map[string]any{"preset": "hipcall", "url": hc.URL,
		"action": map[string]any{"secrets": map[string]string{"token": hipcallToken}, "options": map[string]string{"operation": "create_contact"},
			"body": map[string]any{"last_name": "{{ customer().last_name }}"}}})
	h.subscribe(tid, key, ch, []string{"customer.created"}, nil, "")
	evt := h.publish(tid, key, "customer.created", "shop", h.example("customer.created"))["id"].(string)
	id := h.deliveryFor(tid, key, evt, ch)
	d := h.waitStatus(tid, key, id, "failed", 1)
	log := attemptLog(t, d)
	if num(log[0]["status_code"]) != 422 || !strings.Contains(log[0]["response_body"].(string), `"first_name":["String length is smaller than minLength: 1"]`) ||
		!strings.Contains(d["last_error"].(string), "not retried") {
		t.Fatalf("422 delivery %v", d)
	}
	h.advance(24 * time.Hour)
	time.Sleep(100 * time.Millisecond)
	if d := h.delivery(tid, key, id); num(d["attempts"]) != 1 || len(hc.requests()) != 1 {
		t.Fatalf("a 422 was retried: %v", d)
	}
	if c := h.must(200, "GET", "/v1/tenants/"+tid+"/channels/"+ch, key, nil); c["enabled"] != true {
		t.Fatalf("a 422 disabled the channel: %v", c)
	}

	// A template that fails for an event (no order in a customer event) is
	// permanent too, with the field in the error.
	h.must(200, "PATCH", "/v1/tenants/"+tid+"/channels/"+ch, key, map[string]any{"action": map[string]any{"body": map[string]any{"first_name": "{{ data.order.buyer_name }}", "x": "{{ data.nothing.here }}"}}})
	evt = h.publish(tid, key, "customer.created", "shop", h.example("customer.created"))["id"].(string)
	d = h.waitStatus(tid, key, h.deliveryFor(tid, key, evt, ch), "failed", 1)
	if log := attemptLog(t, d); log[0]["error_class"] != "template" || !strings.Contains(log[0]["error"].(string), "action.body: at x") {
		t.Fatalf("template failure %v", d)
	}
}

func TestActionUnauthorizedDisablesChannel(t *testing.T) {
	h, logs := startHeraldLogged(t)
	hc := newFakeHipcall(t)
	tid, key := h.tenant("acme")
	const wrong = "hc-revoked-token-000000"
	ch, _ := hipcallChannel(h, tid, key, hc.URL, "create_contact", wrong)
	h.subscribe(tid, key, ch, []string{"customer.created"}, nil, "")
	evt := h.publish(tid, key, "customer.created", "shop", h.example("customer.created"))["id"].(string)
	id := h.deliveryFor(tid, key, evt, ch)
	h.waitStatus(tid, key, id, "failed", 1)
	c := h.must(200, "GET", "/v1/tenants/"+tid+"/channels/"+ch, key, nil)
	if c["enabled"] != false || c["disabled_reason"] != "the target refused the credentials (401); update the token and enable the channel" {
		t.Fatalf("after 401: %v", c)
	}
	// A manual retry is refused while the channel is off.
	if r := h.call("POST", "/v1/tenants/"+tid+"/deliveries/"+id+"/retry", key, nil); r.Status != 409 {
		t.Fatalf("retry on a disabled channel: %s", r)
	}
	// Fix the token (the other secrets' "***" would keep theirs) and enable.
	ans := h.must(200, "PATCH", "/v1/tenants/"+tid+"/channels/"+ch, key, map[string]any{"enabled": true,
		"action": map[string]any{"secrets": map[string]string{"token": hipcallToken}}})
	if strings.Contains(ans["action"].(map[string]any)["secrets"].(map[string]any)["token"].(string), "hc-") {
		t.Fatalf("patch answer shows the token: %v", ans)
	}
	retry := h.must(200, "POST", "/v1/tenants/"+tid+"/deliveries/"+id+"/retry", key, nil)
	if att := retry["attempt"].(map[string]any); num(att["status_code"]) != 201 || att["trigger"] != "manual" || retry["delivery"].(map[string]any)["status"] != "succeeded" {
		t.Fatalf("manual retry: %v", retry)
	}
	// Sending "***" back keeps the token.
	h.must(200, "PATCH", "/v1/tenants/"+tid+"/channels/"+ch, key, map[string]any{"action": map[string]any{"secrets": map[string]string{"token": "***"}}})
	h.must(200, "POST", "/v1/tenants/"+tid+"/channels/"+ch+"/test", key, map[string]any{"event_type": "customer.created"})
	if last := hc.requests()[len(hc.requests())-1]; last.Header.Get("Authorization") != "Bearer "+hipcallToken {
		t.Fatalf("after a *** patch the token is %q", last.Header.Get("Authorization"))
	}
	for _, tok := range []string{wrong, hipcallToken} {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("the log shows a token")
		}
		for _, path := range []string{"/channels/" + ch, "/deliveries/" + id} {
			if r := h.call("GET", "/v1/tenants/"+tid+path, key, nil); strings.Contains(string(r.Body), tok) {
				t.Errorf("GET %s shows a token", path)
			}
		}
	}
}

// A target that echoes the request back cannot put a secret into the
// attempt log: response bodies and errors are scrubbed.
func TestActionSecretsScrubbedFromResponses(t *testing.T) {
	h := startHerald(t)
	echo := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "you sent "+r.Header.Get("X-Api-Key")+" to "+r.URL.String())
	})
	tid, key := h.tenant("acme")
	const token = "echo-secret-123456"
	ch, _ := h.actionChannel(tid, key, map[string]any{"url": echo.URL + "/hook?key={{ secrets.token }}",
		"action": map[string]any{"headers": map[string]string{"X-Api-Key": "{{ secrets.token }}"}, "secrets": map[string]string{"token": token},
			"body": map[string]any{"text": "{{ summary() }}"}}})
	test := h.call("POST", "/v1/tenants/"+tid+"/channels/"+ch+"/test", key, map[string]any{"event_type": "order.completed"})
	if test.Status != 200 || strings.Contains(string(test.Body), token) || !strings.Contains(string(test.Body), "you sent ***") {
		t.Fatalf("test answer %s", test)
	}
	if got := echo.requests()[0]; got.Header.Get("X-Api-Key") != token {
		t.Fatalf("the target got %v", got.Header)
	}
}
