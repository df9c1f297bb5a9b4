package web_test

import (
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
		form.Set("next", htmlUnescape(n[1]))
	}
	status, loc, body := c.do(http.MethodPost, "/signin", form)
	if status != http.StatusSeeOther {
		c.e.t.Fatalf("POST /signin: %d: %s", status, body)
	}
	// Read a page for the session's token.
	c.do(http.MethodGet, "/", nil)
	return loc
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
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
