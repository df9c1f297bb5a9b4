package web_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// These tests talk HTTP to the dashboard of a real Herald, as a browser
// without JavaScript would, so they run without Chromium.

// client is one browser: a cookie jar, and no following of redirects, so
// a test sees the Location the dashboard sends as it is (http.Client
// would refuse to parse a malformed one).
type client struct {
	e    *env
	jar  http.CookieJar
	csrf string // the session's token, read from the last page
}

func newClient(e *env) *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, jar: jar}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// do sends one request and answers the status, the Location and the body.
func (c *client) do(method, path string, form url.Values) (int, string, string) {
	c.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.base+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, ck := range c.jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		c.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	c.jar.SetCookies(req.URL, resp.Cookies())
	b, _ := io.ReadAll(resp.Body)
	if m := csrfInput.FindSubmatch(b); m != nil && !strings.HasPrefix(path, "/signin") {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// post sends a form with the session's CSRF token.
func (c *client) post(path string, form url.Values) (int, string, string) {
	c.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", c.csrf)
	return c.do(http.MethodPost, path, form)
}

// signIn signs in with key, passing next, and answers where it was sent.
func (c *client) signIn(key, next string) string {
	c.e.t.Helper()
	status, _, body := c.do(http.MethodGet, "/signin?next="+url.QueryEscape(next), nil)
	m := csrfInput.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		c.e.t.Fatalf("GET /signin: %d without a token: %s", status, body)
	}
	form := url.Values{"csrf": {m[1]}, "api_key": {key}}
	// The form carries next back as the page rendered it.
	if n := regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(body); n != nil {
		form.Set("next", html.UnescapeString(n[1]))
	}
	status, loc, body := c.do(http.MethodPost, "/signin", form)
	if status != http.StatusSeeOther {
		c.e.t.Fatalf("POST /signin: %d: %s", status, body)
	}
	// Read a page for the session's token.
	c.do(http.MethodGet, "/", nil)
	return loc
}

// A sign-in link's next must keep the user on the dashboard: browsers
// drop tabs and newlines and read "\" as "/", so "/\t/evil" and
// "/a/../\evil" (cleaned to "/\evil") are other sites.
func TestSignInNextStaysOnSite(t *testing.T) {
	e := startHerald(t)
	for _, next := range []string{"//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example",
		"/a/../\\evil.example", "/\r/evil.example", "https://evil.example/", "javascript:alert(1)"} {
		if loc := newClient(e).signIn(e.key, next); loc != "/" {
			t.Errorf("next %q: signed in to %q, want /", next, loc)
		}
	}
	if loc := newClient(e).signIn(e.key, "/t/acme/channels?x=1"); loc != "/t/acme/channels?x=1" {
		t.Errorf("next on the site: signed in to %q", loc)
	}
}

// An id such as ".." must not turn the API call into another path: the
// page is not found, and a form does not claim a success that did not
// happen.
func TestDotIDsAreNotFound(t *testing.T) {
	e := startHerald(t)
	c := newClient(e)
	c.signIn(e.key, "")
	for _, p := range []string{"/t/acme/channels/%2E%2E", "/t/acme/channels/a%2F..", "/t/acme/notifications/%2E%2E",
		"/t/acme/deliveries/%2E%2E", "/t/acme/events/%2E%2E", "/operator/tenants/acme/api-keys/x"} {
		if status, _, body := c.do(http.MethodGet, p, nil); status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404: %s", p, status, truncate(body, 300))
		}
	}
	for _, p := range []string{"/t/acme/channels/%2E%2E/delete", "/t/acme/channels/%2E%2E/disable", "/t/acme/channels/%2E%2E/rotate",
		"/t/acme/notifications/%2E%2E/toggle", "/t/acme/notifications/x/attachments/%2E%2E/remove", "/t/acme/deliveries/%2E%2E/retry"} {
		if status, loc, body := c.post(p, url.Values{"enabled": {"false"}}); status != http.StatusNotFound {
			t.Errorf("POST %s: %d %s, want 404: %s", p, status, loc, truncate(body, 300))
		}
	}
}

// otherTenant makes a second tenant with a channel, through the API, and
// answers the channel's id, name and secret.
func otherTenant(e *env) (id, name, secret string) {
	e.t.Helper()
	e.api(http.MethodPost, "/v1/tenants", adminKey, map[string]string{"id": "other", "name": "Other Shop"}, http.StatusCreated, nil)
	var ch struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	name = "other-private-channel"
	e.api(http.MethodPost, "/v1/tenants/other/channels", adminKey, map[string]string{"name": name, "url": e.recv.URL + "/other"}, http.StatusCreated, &ch)
	if ch.Secret == "" {
		var sec struct {
			Secret string `json:"secret"`
		}
		e.api(http.MethodGet, "/v1/tenants/other/channels/"+ch.ID+"/secret", adminKey, nil, http.StatusOK, &sec)
		ch.Secret = sec.Secret
	}
	return ch.ID, name, ch.Secret
}

// A tenant's session reaches none of another tenant's pages or forms: the
// API refuses its key, and nothing of the other tenant shows or changes.
func TestTenantCannotReachAnotherTenant(t *testing.T) {
	e := startHerald(t)
	chID, chName, secret := otherTenant(e)
	c := newClient(e)
	c.signIn(e.key, "")

	for _, p := range []string{"/t/other/notifications", "/t/other/notifications/order.completed", "/t/other/channels",
		"/t/other/channels/" + chID, "/t/other/channels/" + chID + "?show_secret=1", "/t/acme/channels/" + chID + "?show_secret=1",
		"/t/other/deliveries", "/t/other/deliveries?channel_id=" + chID, "/t/other/events", "/operator/tenants", "/operator/tenants/other"} {
		status, _, body := c.do(http.MethodGet, p, nil)
		body = html.UnescapeString(body)
		if status == http.StatusOK || status/100 == 3 {
			t.Errorf("GET %s: %d, want a refusal", p, status)
		}
		if strings.Contains(body, chName) || strings.Contains(body, secret) || strings.Contains(body, "Other Shop") {
			t.Errorf("GET %s shows the other tenant's data: %s", p, truncate(body, 500))
		}
	}
	for _, p := range []string{"/t/other/channels/" + chID + "/disable", "/t/other/channels/" + chID + "/rotate",
		"/t/other/channels/" + chID + "/delete", "/t/acme/channels/" + chID + "/delete", "/t/other/notifications/order.completed/toggle",
		"/t/other/channels", "/operator/tenants/other/api-keys"} {
		form := url.Values{"enabled": {"false"}, "name": {"planted"}, "url": {e.recv.URL + "/planted"}}
		if status, loc, _ := c.post(p, form); status < 400 {
			t.Errorf("POST %s: %d %s, want a refusal", p, status, loc)
		}
	}

	var ch struct {
		Enabled bool `json:"enabled"`
	}
	e.api(http.MethodGet, "/v1/tenants/other/channels/"+chID, adminKey, nil, http.StatusOK, &ch)
	if !ch.Enabled {
		t.Error("the other tenant's channel was disabled")
	}
	var sec struct {
		Secret string `json:"secret"`
	}
	e.api(http.MethodGet, "/v1/tenants/other/channels/"+chID+"/secret", adminKey, nil, http.StatusOK, &sec)
	if sec.Secret != secret {
		t.Error("the other tenant's secret was rotated")
	}
	var lists struct {
		Data []json.RawMessage `json:"data"`
	}
	e.api(http.MethodGet, "/v1/tenants/other/channels", adminKey, nil, http.StatusOK, &lists)
	if len(lists.Data) != 1 {
		t.Errorf("the other tenant has %d channels, want its one", len(lists.Data))
	}
	e.api(http.MethodGet, "/v1/tenants/other/api-keys", adminKey, nil, http.StatusOK, &lists)
	if len(lists.Data) != 1 {
		t.Errorf("the other tenant has %d API keys, want its one", len(lists.Data))
	}
	var et struct {
		Enabled bool `json:"enabled"`
	}
	e.api(http.MethodGet, "/v1/tenants/other/event-types/order.completed", adminKey, nil, http.StatusOK, &et)
	if !et.Enabled {
		t.Error("the other tenant's order.completed was turned off")
	}

	// The same pages do show it to the operator, so the checks above
	// looked for the right things.
	op := newClient(e)
	op.signIn(adminKey, "")
	if status, _, body := op.do(http.MethodGet, "/t/other/channels/"+chID+"?show_secret=1", nil); status != http.StatusOK ||
		!strings.Contains(body, chName) || !strings.Contains(html.UnescapeString(body), secret) {
		t.Errorf("the operator's view of the channel: %d: %s", status, truncate(body, 500))
	}
}

// Every route that changes something refuses a form without the session's
// CSRF token, or with a wrong one, and changes nothing.
func TestEveryPostNeedsCSRF(t *testing.T) {
	e := startHerald(t)
	var ch struct {
		ID string `json:"id"`
	}
	e.api(http.MethodPost, "/v1/tenants/acme/channels", e.key, map[string]string{"name": "hooks", "url": e.recv.URL}, http.StatusCreated, &ch)
	var sub struct {
		ID string `json:"id"`
	}
	e.api(http.MethodPost, "/v1/tenants/acme/subscriptions", e.key, map[string]any{"channel_id": ch.ID, "event_types": []string{"order.completed"}}, http.StatusCreated, &sub)
	var keys struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	e.api(http.MethodGet, "/v1/tenants/acme/api-keys", adminKey, nil, http.StatusOK, &keys)

	c := newClient(e)
	c.signIn(adminKey, "")
	ct, n := "/t/acme/channels/"+ch.ID, "/t/acme/notifications/order.completed"
	// Every non-GET route of the dashboard (web.go and routes* in each file).
	routes := []string{"/signout",
		n + "/toggle", n + "/attach", n + "/attachments/" + sub.ID, n + "/attachments/" + sub.ID + "/remove",
		"/t/acme/channels", "/t/acme/channels/actions", ct, ct + "/enable", ct + "/disable", ct + "/delete", ct + "/rotate", ct + "/test", ct + "/recover",
		"/t/acme/deliveries/dlv_x/retry",
		"/operator/tenants", "/operator/tenants/acme/api-keys", "/operator/tenants/acme/api-keys/" + keys.Data[0].ID + "/revoke",
		"/no/such/page"}
	form := url.Values{"enabled": {"false"}, "name": {"planted"}, "url": {e.recv.URL}, "channel_id": {ch.ID}, "since": {"2020-01-01T00:00"}}
	for _, p := range routes {
		for _, token := range []string{"", "wrong", c.csrf + "x"} {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			if token != "" {
				f.Set("csrf", token)
			}
			if status, loc, _ := c.do(http.MethodPost, p, f); status != http.StatusForbidden {
				t.Errorf("POST %s with token %q: %d %s, want 403", p, token, status, loc)
			}
		}
	}
	// Nothing changed, and the session still works.
	var got struct {
		Name    string `json:"name"`
		Enabled bool   `json:"enabled"`
	}
	e.api(http.MethodGet, "/v1/tenants/acme/channels/"+ch.ID, e.key, nil, http.StatusOK, &got)
	if got.Name != "hooks" || !got.Enabled {
		t.Errorf("the channel changed: %+v", got)
	}
	e.api(http.MethodGet, "/v1/tenants/acme/subscriptions/"+sub.ID, e.key, nil, http.StatusOK, nil)
	e.api(http.MethodGet, "/v1/tenants/acme/api-keys", adminKey, nil, http.StatusOK, &keys)
	if len(keys.Data) != 1 {
		t.Errorf("acme has %d keys, want 1", len(keys.Data))
	}
	if typeEnabled(e, "order.completed") != true {
		t.Error("order.completed was turned off")
	}
	var tenants struct {
		Data []json.RawMessage `json:"data"`
	}
	e.api(http.MethodGet, "/v1/tenants", adminKey, nil, http.StatusOK, &tenants)
	if len(tenants.Data) != 1 {
		t.Errorf("%d tenants, want 1", len(tenants.Data))
	}
	if status, _, _ := c.do(http.MethodGet, "/operator/tenants", nil); status != http.StatusOK {
		t.Errorf("the session ended: %d", status)
	}
	// The same forms with the token do work (the sign-out last).
	if status, loc, _ := c.post(ct+"/disable", nil); status != http.StatusSeeOther {
		t.Errorf("disable with the token: %d %s", status, loc)
	}
	if status, loc, _ := c.post("/signout", nil); status != http.StatusSeeOther || loc != "/signin" {
		t.Errorf("sign out with the token: %d %s", status, loc)
	}
}

// The action channel form is refused without the session's CSRF token,
// like every other form, and makes no channel.
func TestActionFormNeedsCSRF(t *testing.T) {
	e := startHerald(t)
	c := newClient(e)
	c.signIn(e.key, "")
	form := url.Values{"name": {"planted"}, "preset": {"hipcall"}, "url": {e.recv.URL}, "token": {"planted-token"}, "operation": {"create_task"}}
	for _, token := range []string{"", "wrong", c.csrf + "x"} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if token != "" {
			f.Set("csrf", token)
		}
		if status, loc, _ := c.do(http.MethodPost, "/t/acme/channels/actions", f); status != http.StatusForbidden {
			t.Errorf("POST /t/acme/channels/actions with token %q: %d %s, want 403", token, status, loc)
		}
	}
	var lst struct {
		Data []json.RawMessage `json:"data"`
	}
	e.api(http.MethodGet, "/v1/tenants/acme/channels", e.key, nil, http.StatusOK, &lst)
	if len(lst.Data) != 0 {
		t.Errorf("refused forms made %d channels", len(lst.Data))
	}
}

// The action form, as a browser without JavaScript posts it: a Slack
// channel needs only its URL (no token or options reach the API), and a
// refused Hipcall form shows the API's reasons under its fields and keeps
// what was typed, except the token.
func TestActionForm(t *testing.T) {
	e := startHerald(t)
	c := newClient(e)
	c.signIn(e.key, "")
	const token = "no-echo-token-8c1d"
	if status, _, body := c.do(http.MethodGet, "/t/acme/channels", nil); status != http.StatusOK || !strings.Contains(body, `id="create-action"`) {
		t.Fatalf("GET /t/acme/channels: %d without form#create-action", status)
	}

	// Slack: the operation and a stray token are not sent with it.
	status, loc, body := c.post("/t/acme/channels/actions", url.Values{"name": {"#sales"}, "preset": {"slack"},
		"url": {e.recv.URL + "/slack"}, "token": {token}, "operation": {"create_contact"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/t/acme/channels/ch_") || strings.Contains(loc, token) {
		t.Fatalf("slack: %d %q, want a redirect to the channel: %s", status, loc, truncate(body, 500))
	}
	_, _, page := c.do(http.MethodGet, loc, nil)
	if !strings.Contains(page, "Action channel created.") || !strings.Contains(page, "slack preset") {
		t.Errorf("the slack channel's page: %s", truncate(page, 800))
	}
	var ch struct {
		Kind   string `json:"kind"`
		URL    string `json:"url"`
		Action struct {
			Preset  string            `json:"preset"`
			Options map[string]string `json:"options"`
			Secrets map[string]string `json:"secrets"`
		} `json:"action"`
	}
	e.api(http.MethodGet, "/v1/tenants/acme/channels/"+strings.TrimPrefix(loc, "/t/acme/channels/"), e.key, nil, http.StatusOK, &ch)
	if ch.Kind != "action" || ch.Action.Preset != "slack" || ch.URL != e.recv.URL+"/slack" || len(ch.Action.Options) != 0 || len(ch.Action.Secrets) != 0 {
		t.Errorf("the slack channel is %+v", ch)
	}

	// Slack without a URL, Hipcall without a token, Hipcall with a bad
	// operation, no preset: each refused with its field's reason.
	for _, tc := range []struct {
		name   string
		form   url.Values
		inputs []string // ids of the inputs whose error must show
		want   string
	}{
		{"slack without a url", url.Values{"preset": {"slack"}, "url": {""}}, []string{"ca-url"}, "incoming-webhook URL"},
		{"hipcall without a token", url.Values{"preset": {"hipcall"}, "operation": {"create_task"}}, []string{"ca-token"}, "required by the hipcall preset"},
		{"hipcall with a bad operation", url.Values{"preset": {"hipcall"}, "operation": {"drop_tables"}, "token": {token}}, []string{"ca-operation"}, "not a Hipcall operation"},
		{"no preset", url.Values{"preset": {""}, "token": {token}}, []string{"ca-preset"}, "choose a preset"},
		{"no name", url.Values{"name": {""}, "preset": {"hipcall"}, "operation": {"create_task"}, "token": {token}}, []string{"ca-name"}, "is required"},
	} {
		form := url.Values{"name": {"Kept name"}, "url": {e.recv.URL + "/kept"}}
		for k, v := range tc.form {
			form[k] = v
		}
		status, loc, body := c.post("/t/acme/channels/actions", form)
		if status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s, want 422: %s", tc.name, status, loc, truncate(body, 500))
			continue
		}
		if strings.Contains(body, token) {
			t.Errorf("%s: the page echoes the token", tc.name)
		}
		for _, id := range tc.inputs {
			// The error follows its input, before the next label.
			i := strings.Index(body, `id="`+id+`"`)
			if i < 0 {
				t.Fatalf("%s: no input %s", tc.name, id)
			}
			next := body[i:]
			if j := strings.Index(next, "<label"); j > 0 {
				next = next[:j]
			}
			if !strings.Contains(next, `class="field-error"`) || !strings.Contains(html.UnescapeString(next), tc.want) {
				t.Errorf("%s: no error %q under %s: %s", tc.name, tc.want, id, next)
			}
		}
		if form.Get("name") != "" && !strings.Contains(body, `value="Kept name"`) {
			t.Errorf("%s: the name was not kept", tc.name)
		}
		if !strings.Contains(body, `value="`+e.recv.URL+`/kept"`) && form.Get("url") != "" {
			t.Errorf("%s: the url was not kept", tc.name)
		}
		if strings.Contains(body[:strings.Index(body, `id="create-action"`)], `class="field-error"`) {
			t.Errorf("%s: the webhook form shows the action form's errors", tc.name)
		}
	}
	var lst struct {
		Data []json.RawMessage `json:"data"`
	}
	e.api(http.MethodGet, "/v1/tenants/acme/channels", e.key, nil, http.StatusOK, &lst)
	if len(lst.Data) != 1 {
		t.Errorf("%d channels, want the slack one: a refused form made one", len(lst.Data))
	}
}

// The session cookie is HttpOnly and SameSite=Lax, Secure unless served
// over plain HTTP on loopback, and a cookie Herald did not seal is no
// session.
func TestSessionCookie(t *testing.T) {
	e := startHerald(t)
	signin := func(host string) *http.Cookie {
		req, _ := http.NewRequest(http.MethodGet, e.base+"/signin", nil)
		req.Host = host
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		token := csrfInput.FindSubmatch(b)
		form := url.Values{"csrf": {string(token[1])}, "api_key": {e.key}}
		req, _ = http.NewRequest(http.MethodPost, e.base+"/signin", strings.NewReader(form.Encode()))
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, ck := range resp.Cookies() {
			req.AddCookie(ck)
		}
		resp, err = http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "herald_session" {
				return ck
			}
		}
		t.Fatalf("sign-in on %s set no session: %d", host, resp.StatusCode)
		return nil
	}
	local := signin(strings.TrimPrefix(e.base, "http://"))
	if !local.HttpOnly || local.SameSite != http.SameSiteLaxMode || local.Secure {
		t.Errorf("loopback cookie: HttpOnly %v, SameSite %v, Secure %v", local.HttpOnly, local.SameSite, local.Secure)
	}
	if public := signin("dashboard.example.com"); !public.Secure || !public.HttpOnly {
		t.Errorf("public cookie: Secure %v, HttpOnly %v", public.Secure, public.HttpOnly)
	}
	if strings.Contains(local.Value, e.key) || strings.Contains(local.Value, strings.TrimPrefix(e.key, "hk_")) {
		t.Error("the cookie holds the key in the clear")
	}
	// A flipped byte is no session: back to sign in.
	b := []byte(local.Value)
	b[len(b)/2] ^= 1
	if b[len(b)/2] == '_' || b[len(b)/2] == '-' {
		b[len(b)/2] = 'A'
	}
	for _, v := range []string{string(b), "", "not-base64!", local.Value[:20]} {
		req, _ := http.NewRequest(http.MethodGet, e.base+"/t/acme/channels", nil)
		req.AddCookie(&http.Cookie{Name: "herald_session", Value: v})
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
			t.Errorf("cookie %q: %d %s, want to sign in", truncate(v, 20), resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// A confirmation travels to the next page in a cookie, once: a link cannot
// put its own words on a real page.
func TestFlashComesFromTheServerOnly(t *testing.T) {
	e := startHerald(t)
	c := newClient(e)
	c.signIn(e.key, "")
	tp := "/t/" + tenantID + "/notifications"
	if _, _, body := c.do(http.MethodGet, tp+"?ok=Your+account+is+suspended&err=Call+555", nil); strings.Contains(body, "suspended") || strings.Contains(body, "555") {
		t.Fatal("a message in the URL is shown on the page")
	}
	status, loc, _ := c.post(tp+"/payment.succeeded/toggle", url.Values{"enabled": {"false"}})
	if status != http.StatusSeeOther || strings.Contains(loc, "turned") {
		t.Fatalf("toggle: %d to %q, want a redirect without the message in the URL", status, loc)
	}
	if _, _, body := c.do(http.MethodGet, loc, nil); !strings.Contains(body, "payment.succeeded turned off") {
		t.Fatalf("the page after the toggle has no confirmation: %s", body)
	}
	if _, _, body := c.do(http.MethodGet, loc, nil); strings.Contains(body, "turned off.") {
		t.Error("the confirmation shows again on the next page")
	}
}
