package action_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/action"
	"github.com/heraldhq/herald/internal/catalog"
)

func event(t *testing.T, typ string, data string) *herald.Event {
	t.Helper()
	return &herald.Event{ID: "evt_1", Type: typ, Source: "shop", OccurredAt: time.Date(2025, 8, 4, 10, 0, 0, 0, time.UTC), Data: json.RawMessage(data)}
}

func render(t *testing.T, url string, a *herald.Action, e *herald.Event) *action.Request {
	t.Helper()
	tpl, err := action.Compile(url, a)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	req, err := tpl.Render(e)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return req
}

func TestBodyKeepsTypesAndOrder(t *testing.T) {
	a := &herald.Action{Method: "post", Body: json.RawMessage(`{
		"z": "{{ data.n }}", "a": "{{ data.list }}", "text": "n={{ data.n }} ok={{ data.ok }} {{ data.missing }}",
		"obj": "{{ {'k': data.n * 2} }}", "lit": [1, 2.5, true, null, "plain"], "gone": "{{ data.missing }}",
		"nested": {"id": "{{ id }}", "t": "{{ type }}"}}`)}
	req := render(t, "https://example.com/x", a, event(t, "order.completed", `{"n": 49, "list": [1, "b"], "ok": true}`))
	want := `{"z":49,"a":[1,"b"],"text":"n=49 ok=true ","obj":{"k":98},"lit":[1,2.5,true,null,"plain"],"nested":{"id":"evt_1","t":"order.completed"}}`
	if string(req.Body) != want {
		t.Fatalf("body\n got %s\nwant %s", req.Body, want)
	}
	if req.Method != "POST" {
		t.Fatalf("method %q", req.Method)
	}
}

func TestHeadersAndURLMayReadSecrets(t *testing.T) {
	a := &herald.Action{Headers: map[string]string{"Authorization": "Bearer {{ secrets.token }}", "X-Type": "{{ type }}"},
		Secrets: map[string]string{"token": "s3cr3t-token"}}
	req := render(t, "https://example.com/items/{{ urlencode(data.name) }}?k={{ secrets.token }}", a, event(t, "x.y", `{"name": "a b/c"}`))
	if req.Header.Get("Authorization") != "Bearer s3cr3t-token" || req.Header.Get("X-Type") != "x.y" {
		t.Fatalf("headers %v", req.Header)
	}
	if req.URL != "https://example.com/items/a+b%2Fc?k=s3cr3t-token" {
		t.Fatalf("url %s", req.URL)
	}
}

func TestCompileErrorsNameTheField(t *testing.T) {
	cases := []struct {
		url    string
		a      herald.Action
		field  string
		detail string
	}{
		{"https://x.test/", herald.Action{Body: json.RawMessage(`{"a": "{{ data.x + }}"}`)}, "action.body", "at a: {{ data.x + }}: does not compile"},
		{"https://x.test/", herald.Action{Body: json.RawMessage(`{"a": "{{ secrets.token }}"}`), Secrets: map[string]string{"token": "t"}}, "action.body", "headers and the URL only"},
		{"https://x.test/", herald.Action{Body: json.RawMessage(`{"a": "{{ nope() }}"}`)}, "action.body", "does not compile"},
		{"https://x.test/", herald.Action{Body: json.RawMessage(`{"a": "{{ data.x"}`)}, "action.body", "not closed"},
		{"https://x.test/", herald.Action{Body: json.RawMessage(`{"a": `)}, "action.body", "not valid JSON"},
		{"https://x.test/", herald.Action{Headers: map[string]string{"Authorization": "Bearer {{ secrets.tokn }}"}, Secrets: map[string]string{"token": "t"}}, "action.headers.Authorization", `no secret "tokn"`},
		{"https://x.test/", herald.Action{Method: "TRACE"}, "action.method", "not allowed"},
		{"https://{{ data.host }}/x", herald.Action{}, "url", "after the host"},
		{"https://x.test{{ data.host }}/x", herald.Action{}, "url", "after the host"},
		{"https://{{ data.user }}@x.test/", herald.Action{}, "url", "after the host"},
		{"https://x.test/{{ }}", herald.Action{}, "url", "empty"},
	}
	for _, c := range cases {
		_, err := action.Compile(c.url, &c.a)
		var v *herald.ValidationError
		if !errors.As(err, &v) || len(v.Fields) != 1 || v.Fields[0].Field != c.field || !strings.Contains(v.Fields[0].Detail, c.detail) {
			t.Errorf("%s %+v: got %v, want %s: …%s…", c.url, c.a, err, c.field, c.detail)
		}
	}
}

func TestRenderErrorIsReportedWithoutSecrets(t *testing.T) {
	a := &herald.Action{Headers: map[string]string{"X-N": "{{ secrets.token + data.n.x }}"}, Secrets: map[string]string{"token": "s3cr3t-token"}}
	tpl, err := action.Compile("https://x.test/", a)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tpl.Render(event(t, "x.y", `{"n": 5}`))
	if err == nil || !strings.Contains(err.Error(), "action.headers.X-N") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("render error %v", err)
	}
	tpl, _ = action.Compile("https://x.test/", &herald.Action{Body: json.RawMessage(`{"a": "{{ data.order.id }}"}`)})
	if _, err := tpl.Render(event(t, "x.y", `{}`)); err == nil || !strings.Contains(err.Error(), "action.body: at a:") {
		t.Fatalf("render error %v", err)
	}
}

func TestMoneyAndCoalesce(t *testing.T) {
	a := &herald.Action{Body: json.RawMessage(`{"a": "{{ money(4900, 'USD') }}", "b": "{{ money(4900, 'JPY') }}", "c": "{{ money('18.00', 'gbp') }}",
		"d": "{{ coalesce('', nil, 'x') }}", "e": "{{ money(5, 'KWD') }}"}`)}
	req := render(t, "https://x.test/", a, event(t, "x.y", `{}`))
	if want := `{"a":"49.00 USD","b":"4900 JPY","c":"18.00 GBP","d":"x","e":"0.005 KWD"}`; string(req.Body) != want {
		t.Fatalf("got %s, want %s", req.Body, want)
	}
}

func TestSummaryExamples(t *testing.T) {
	cases := map[string]string{
		"order.completed":                 "Order #0000123456 completed — 18.00 GBP — mrbuyer@gmail.com",
		"payment.succeeded":               "Payment #pay_2IjeQm4hqU6RA4Z4kwDee succeeded — 4.00 USD — test@acme.com",
		"payment.processing":              "Payment #pay_9QzLw2XcR4mNb7TyUe1Ks processing — 499.00 INR — priya.sharma@example.in",
		"dispute.opened":                  "Dispute #dsp_123 opened — 4.00 USD — test@acme.com",
		"customer.created":                "Customer #ct_78004 created — 4900 JPY — kenji.tanaka@example.com",
		"credit.added":                    "Credit #cle_3kF8mPqR7vNwXyZ1a added — 100 credits — customer cus_8VbC6JDZzPEqfBPUdpj0K",
		"transaction.approved":            "Transaction #txn_551902 approved — 27.00 USD — maria.lopez@example.com",
		"customer.subscription_cancelled": "Customer subscription #sbs_20931 cancelled — 19.00 USD — maria.lopez@example.com",
	}
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range cases {
		et, _ := cat.Lookup(typ)
		var data map[string]any
		if err := json.Unmarshal(et.Example, &data); err != nil {
			t.Fatal(err)
		}
		if got := action.Summary(typ, data); got != want {
			t.Errorf("%s:\n got %s\nwant %s", typ, got, want)
		}
	}
}

// TestEveryCatalogExample renders summary() and customer() and both
// presets' bodies for every built-in event type: no error, and a summary
// that names the event and something more.
func TestEveryCatalogExample(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	var tpls []*action.Template
	for _, op := range []string{"create_contact", "create_company", "create_task"} {
		p, err := action.ExpandPreset(herald.PresetHipcall, "", map[string]string{"operation": op})
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := action.Compile(p.URL, &herald.Action{Method: p.Method, Headers: p.Headers, Body: p.Body, Secrets: map[string]string{"token": "t0ken-value"}})
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		tpls = append(tpls, tpl)
	}
	p, _ := action.ExpandPreset(herald.PresetSlack, "https://hooks.slack.test/services/T/B/X", nil)
	slack, err := action.Compile(p.URL, &herald.Action{Method: p.Method, Body: p.Body})
	if err != nil {
		t.Fatal(err)
	}
	tpls = append(tpls, slack)
	for _, et := range cat.All() {
		e := event(t, et.Name, string(et.Example))
		var data map[string]any
		_ = json.Unmarshal(et.Example, &data)
		sum := action.Summary(et.Name, data)
		group, act, _ := strings.Cut(et.Name, ".")
		if !strings.HasPrefix(strings.ToLower(sum), strings.ReplaceAll(group, "_", " ")) || !strings.Contains(sum, " — ") {
			t.Errorf("%s: summary %q", et.Name, sum)
		}
		for _, w := range strings.Split(act, "_") {
			if !strings.Contains(sum, " "+w) {
				t.Errorf("%s: summary %q does not say %q", et.Name, sum, w)
			}
		}
		c := action.Customer(data)
		if c.Email == "" && c.ID == "" {
			t.Errorf("%s: no customer found: %+v", et.Name, c)
		}
		for _, tpl := range tpls {
			req, err := tpl.Render(e)
			if err != nil {
				t.Errorf("%s: %v", et.Name, err)
				continue
			}
			var body map[string]any
			if err := json.Unmarshal(req.Body, &body); err != nil {
				t.Errorf("%s: body %s: %v", et.Name, req.Body, err)
			}
			if fn, ok := body["first_name"]; ok && fn == "" {
				t.Errorf("%s: empty first_name in %s", et.Name, req.Body)
			}
		}
	}
}

func TestHipcallContactBody(t *testing.T) {
	p, err := action.ExpandPreset(herald.PresetHipcall, "https://use.hipcall.test/api/v3/tasks", map[string]string{"operation": "create_contact"})
	if err != nil {
		t.Fatal(err)
	}
	if p.URL != "https://use.hipcall.test/api/v3/contacts" {
		t.Fatalf("url %s", p.URL)
	}
	a := &herald.Action{Method: p.Method, Headers: p.Headers, Body: p.Body, Secrets: map[string]string{"token": "tok"}}
	req := render(t, p.URL, a, event(t, "payment.succeeded", `{"customer":{"customer_id":"cus_1","email":"jane@example.com","name":""}}`))
	want := `{"first_name":"jane","emails":["jane@example.com"],"external_id":"cus_1"}`
	if string(req.Body) != want {
		t.Fatalf("got %s, want %s", req.Body, want)
	}
	req = render(t, p.URL, a, event(t, "x.y", `{}`))
	if string(req.Body) != `{"first_name":"Customer"}` {
		t.Fatalf("got %s", req.Body)
	}
}

func TestPresetErrors(t *testing.T) {
	for _, c := range []struct {
		preset string
		opts   map[string]string
		field  string
	}{
		{"hipcall", map[string]string{"operation": "create_deal"}, "action.options.operation"},
		{"hipcall", nil, "action.options.operation"},
		{"hipcall", map[string]string{"operation": "create_task", "x": "1"}, "action.options.x"},
		{"slack", nil, "url"},
		{"zapier", nil, "action.preset"},
	} {
		_, err := action.ExpandPreset(c.preset, "", c.opts)
		var v *herald.ValidationError
		if !errors.As(err, &v) || v.Fields[0].Field != c.field {
			t.Errorf("%s %v: got %v, want field %s", c.preset, c.opts, err, c.field)
		}
	}
}

func TestRedact(t *testing.T) {
	got := action.Redact(`{"token":"abcd1234","x":"ab"}`, map[string]string{"token": "abcd1234", "short": "ab"})
	if got != `{"token":"***","x":"ab"}` {
		t.Fatal(got)
	}
}

// An expression may start right after the host, in the query.
func TestURLExpressionInQuery(t *testing.T) {
	tpl, err := action.Compile("https://x.test?id={{ urlencode(data.id) }}", &herald.Action{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := tpl.Render(event(t, "x.y", `{"id": "a b"}`))
	if err != nil || r.URL != "https://x.test?id=a+b" && r.URL != "https://x.test?id=a%20b" {
		t.Fatalf("rendered %q, %v", r.URL, err)
	}
}
