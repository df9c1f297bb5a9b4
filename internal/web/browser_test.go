package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/internal/server"
	"github.com/heraldhq/herald/internal/testenv"
)

// These tests drive a real headless Chromium through the dashboard of a
// real Herald (SQLite, dispatcher, API on a listener) that delivers to a
// real local receiver. They use only what a person can do in a browser —
// fill forms, press buttons, read the page — and check the result through
// the API, so the dashboard is proven to do what it shows.
//
// Screenshots of every main page land in testdata/screenshots (git-ignored)
// for a human to look at.

const (
	adminKey = "browser-test-admin-key-0123456789"
	tenantID = "acme"
	// step bounds every single browser action: a wait never hangs the run.
	step = 15 * time.Second
)

// receiver is the webhook endpoint: 204, or 400 for the next failNext
// requests.
type receiver struct {
	*httptest.Server
	failNext atomic.Int32
	got      atomic.Int32
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.got.Add(1)
		if rc.failNext.Add(-1) >= 0 {
			http.Error(w, "receiver refuses this one", http.StatusBadRequest)
			return
		}
		rc.failNext.Store(0)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// env is one Herald, one receiver and one browser tab shared by the steps.
type env struct {
	t        *testing.T
	base     string
	key      string // the tenant's API key
	recv     *receiver
	tab      context.Context
	shotsDir string
}

// findBrowser returns a Chromium-like browser, or skips the test (fails it
// under HERALD_TEST_STRICT=1, as in CI).
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "no browser for the dashboard tests (chromium, chromium-browser or google-chrome on PATH)")
	return ""
}

func startEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	browser := findBrowser(t)
	e := startHerald(t)

	// Flags for CI: root needs no-sandbox; containers have no GPU and a
	// small /dev/shm.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first Do starts the browser and binds it to tab, which has no
	// deadline; each later action gets its own bounded context.
	startCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", browser, err)
		}
	case <-startCtx.Done():
		t.Fatalf("%s did not start within 30s", browser)
	}
	e.tab = tab
	return e
}

// startHerald starts a real Herald with the tenant acme and a receiver,
// without a browser: the env's API helpers work, its browser ones do not.
func startHerald(t *testing.T) *env {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("HERALD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	srv, stop, err := server.Start(context.Background(), server.Config{
		Listen:             "127.0.0.1:0",
		DataDir:            t.TempDir(),
		AdminKey:           adminKey,
		AllowedTargetCIDRs: "127.0.0.0/8",
		PollInterval:       50 * time.Millisecond,
		ShutdownTimeout:    5 * time.Second,
		Synchronous:        "NORMAL",
	}, log)
	if err != nil {
		t.Fatalf("start herald: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("herald stopped with: %v", err)
		}
	})
	e := &env{t: t, base: "http://" + srv.Addr(), recv: newReceiver(t)}

	var created struct {
		APIKey string `json:"api_key"`
	}
	e.api(http.MethodPost, "/v1/tenants", adminKey, map[string]string{"id": tenantID, "name": "Acme Store"}, http.StatusCreated, &created)
	e.key = created.APIKey

	e.shotsDir = filepath.Join("testdata", "screenshots")
	if err := os.MkdirAll(e.shotsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// api calls Herald's REST API as key and checks the status.
func (e *env) api(method, path, key string, in any, want int, out any) {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// run runs one step of the test as a subtest; the helpers report to it.
func (e *env) run(parent *testing.T, name string, f func(t *testing.T)) bool {
	return parent.Run(name, func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		f(t)
	})
}

// do runs browser steps with a bounded context.
func (e *env) do(steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.tab, step)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		e.t.Fatalf("browser at %s: %v", e.location(), err)
	}
}

// run runs one browser action that returns a value, bounded.
func run[T any](e *env, a chromedp.Action[T]) T {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.tab, step)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		e.t.Fatalf("browser at %s: %v", e.location(), err)
	}
	return v
}

func (e *env) location() string {
	ctx, cancel := context.WithTimeout(e.tab, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// open loads a page of the dashboard and answers its HTTP status.
func (e *env) open(path string) int64 {
	e.t.Helper()
	resp := run(e, chromedp.NavigateResponse(e.base+path))
	if resp == nil {
		return 0
	}
	return resp.Status
}

// openOK loads a page that must answer 200 and show sel.
func (e *env) openOK(path, sel string) {
	e.t.Helper()
	if st := e.open(path); st != http.StatusOK {
		e.t.Fatalf("GET %s: status %d, want 200; page says: %s", path, st, e.mainText())
	}
	e.mustHave(sel)
}

// submit presses a form's button (or clicks a link) and waits for the
// page it leads to.
func (e *env) submit(sel string) {
	e.t.Helper()
	run(e, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
}

// fill sets a form field's value as typing would.
func (e *env) fill(sel, value string) {
	e.t.Helper()
	e.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

// count is how many elements match sel right now (no waiting).
func (e *env) count(sel string) int {
	e.t.Helper()
	return run(e, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%s).length", jsString(sel))))
}

func (e *env) mustHave(sel string) {
	e.t.Helper()
	if e.count(sel) == 0 {
		e.t.Fatalf("page %s has no %s; it says: %s", e.location(), sel, e.mainText())
	}
}

// contract reports every selector of the page contract that is missing.
func (e *env) contract(sels ...string) {
	e.t.Helper()
	for _, sel := range sels {
		if e.count(sel) == 0 {
			e.t.Errorf("page %s has no %s", e.location(), sel)
		}
	}
}

// text is the trimmed text of the first element matching sel, "" if none.
func (e *env) text(sel string) string {
	e.t.Helper()
	return strings.TrimSpace(run(e, chromedp.Evaluate[string](fmt.Sprintf(
		"(function(){var n=document.querySelector(%s);return n?n.textContent:''})()", jsString(sel)))))
}

func (e *env) attr(sel, name string) string {
	e.t.Helper()
	return run(e, chromedp.Evaluate[string](fmt.Sprintf(
		"(function(){var n=document.querySelector(%s);return n?(n.getAttribute(%s)||''):''})()", jsString(sel), jsString(name))))
}

// mainText is the page's main content, for failure messages.
func (e *env) mainText() string {
	ctx, cancel := context.WithTimeout(e.tab, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("main")||document.body).innerText`))
	if err != nil {
		return "?"
	}
	return truncate(strings.Join(strings.Fields(s), " "), 600)
}

// waitText reloads path until the text of sel contains want, for at most
// 10 s: the dispatcher works in the background.
func (e *env) waitText(path, sel, want string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.open(path)
		got := e.text(sel)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %s reads %q after 10s, want %q", path, sel, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot saves a full-page screenshot for a human to review.
func (e *env) shot(name string) {
	e.t.Helper()
	png := run(e, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(e.shotsDir, name+".png"), png, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// signIn signs in through the form and answers where it landed.
func (e *env) signIn(key string) string {
	e.t.Helper()
	e.openOK("/signin", "input[name=api_key]")
	e.fill("input[name=api_key]", key)
	e.submit("form[action='/signin'] button[type=submit]")
	return e.location()
}

func (e *env) signOut() {
	e.t.Helper()
	e.submit("form.signout button")
}

// cookie is the browser's cookie of that name for the dashboard, if any.
func (e *env) cookie(name string) *network.Cookie {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.tab, step)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{e.base + "/"}})
	if err != nil {
		e.t.Fatalf("get cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func typeEnabled(e *env, name string) bool {
	e.t.Helper()
	var lst struct {
		Data []struct {
			Name    string `json:"name"`
			Enabled bool   `json:"enabled"`
		} `json:"data"`
	}
	e.api(http.MethodGet, "/v1/tenants/"+tenantID+"/event-types", e.key, nil, http.StatusOK, &lst)
	for _, et := range lst.Data {
		if et.Name == name {
			return et.Enabled
		}
	}
	e.t.Fatalf("the API lists no event type %s", name)
	return false
}

func TestBrowser(t *testing.T) {
	e := startEnv(t)
	tp := "/t/" + tenantID

	// A browser fetches /favicon.ico (and other things) on its own after a
	// page loads; none of that may replace the sign-in form's CSRF token,
	// or a person's first sign-in fails with 403.
	e.run(t, "SignInFormSurvivesFavicon", func(t *testing.T) {
		e.openOK("/signin", "input[name=api_key]")
		form := e.attr("input[name=csrf]", "value")
		time.Sleep(500 * time.Millisecond) // let the browser make its own requests
		if c := e.cookie("herald_signin"); c == nil || c.Value != form {
			t.Errorf("the sign-in form's CSRF token no longer matches its cookie once the browser fetched /favicon.ico")
		}
	})

	signedIn := e.run(t, "SignIn", func(t *testing.T) {
		e.openOK("/signin", "input[name=api_key]")
		e.shot("signin")

		if got := e.signIn("hk_not_a_real_key_at_all"); !strings.Contains(got, "/signin") {
			t.Fatalf("a wrong key landed on %s", got)
		}
		if e.count("p.error") == 0 || !strings.Contains(e.text("p.error"), "unknown or revoked") {
			t.Errorf("a wrong key shows no error; the page says: %s", e.mainText())
		}
		if c := e.cookie("herald_session"); c != nil {
			t.Errorf("a wrong key got a session cookie: %+v", c)
		}

		if got := e.signIn(e.key); !strings.HasSuffix(got, tp+"/notifications") {
			t.Fatalf("the tenant key landed on %s, want its notifications", got)
		}
		c := e.cookie("herald_session")
		if c == nil {
			t.Fatal("signed in without a session cookie")
		}
		if !c.HTTPOnly || c.Secure { // plain HTTP on loopback: not Secure
			t.Errorf("session cookie: HttpOnly %v Secure %v, want HttpOnly and not Secure on loopback HTTP", c.HTTPOnly, c.Secure)
		}
		// A tenant's key is no operator's: the API's 403 shows through.
		if st := e.open("/operator/tenants"); st != http.StatusForbidden {
			t.Errorf("a tenant opening /operator/tenants: status %d, want 403", st)
		}

		e.openOK(tp+"/notifications", "form.signout")
		e.signOut()
		if got := e.location(); !strings.Contains(got, "/signin") {
			t.Errorf("signing out landed on %s", got)
		}
		if c := e.cookie("herald_session"); c != nil {
			t.Errorf("signed out, the session cookie is still there")
		}
		if e.open(tp + "/notifications"); !strings.Contains(e.location(), "/signin") {
			t.Errorf("after signing out, the notifications page did not send to sign in")
		}

		e.signIn(e.key) // the steps below need a session
	})
	if !signedIn {
		return
	}

	const typ = "order.completed"
	row := fmt.Sprintf("tr[data-type=%q]", typ)

	e.run(t, "ToggleEvent", func(t *testing.T) {
		e.openOK(tp+"/notifications", row)
		e.shot("notifications")
		if got := e.text(row + " .state"); got != "On" {
			t.Fatalf("%s .state = %q, want On", row, got)
		}
		if got := e.text(row + " form.toggle button"); got != "Turn off" {
			t.Errorf("toggle button reads %q, want Turn off", got)
		}
		e.submit(row + " form.toggle button")
		e.mustHave(row)
		if got := e.text(row + " .state"); got != "Off" {
			t.Fatalf("after Turn off, .state = %q", got)
		}
		if typeEnabled(e, typ) {
			t.Fatal("the page says Off, the API says enabled")
		}
		if got := e.text(row + " form.toggle button"); got != "Turn on" {
			t.Errorf("toggle button reads %q, want Turn on", got)
		}
		e.submit(row + " form.toggle button")
		e.mustHave(row)
		if got := e.text(row + " .state"); got != "On" {
			t.Fatalf("after Turn on, .state = %q", got)
		}
		if !typeEnabled(e, typ) {
			t.Fatal("the page says On, the API says disabled")
		}
	})

	var channelID string
	attached := e.run(t, "ChannelAndAttach", func(t *testing.T) {
		e.openOK(tp+"/channels", "form#create-channel")
		e.fill("form#create-channel input[name=name]", "Shop receiver")
		e.fill("form#create-channel input[name=url]", e.recv.URL+"/hook")
		e.fill("form#create-channel select[name=policy]", "standard")
		e.submit("form#create-channel button[type=submit]")
		loc, _ := url.Parse(e.location())
		prefix := tp + "/channels/"
		if !strings.HasPrefix(loc.Path, prefix) || len(loc.Path) == len(prefix) {
			t.Fatalf("creating a channel landed on %s, want the channel's page; it says: %s", loc, e.mainText())
		}
		channelID = strings.TrimPrefix(loc.Path, prefix)
		e.mustHave(".channel-state")
		if got := e.text(".channel-state"); got != "Enabled" {
			t.Errorf(".channel-state = %q, want Enabled", got)
		}
		// The channel page, as it is opened later: the secret only on request.
		e.openOK(prefix+channelID, ".channel-state")
		e.contract("form#edit", "form#disable", "form#delete", "form#rotate", "form#test select[name=event_type]",
			"form#recover input[name=since][type=datetime-local]", "form#show-secret", "#health")
		e.shot("channel")
		if e.count("form#show-secret") > 0 {
			e.submit("form#show-secret button[type=submit]")
			if got := e.text("#secret"); !strings.HasPrefix(got, "whsec_") {
				t.Errorf("#secret = %q after Show secret, want a whsec_ secret", got)
			}
		}
		e.openOK(tp+"/channels", fmt.Sprintf("tr[data-channel=%q] a.channel-link", channelID))
		e.shot("channels")

		e.openOK(tp+"/notifications/"+typ, "form#attach")
		e.fill("form#attach select[name=channel_id]", channelID)
		for _, src := range []string{"shop", "funnel"} {
			e.do(chromedp.Click(chromedp.CSS(fmt.Sprintf("form#attach input[name=sources][value=%q]", src))))
		}
		e.submit("form#attach button[type=submit]")
		e.mustHave("tr.attachment")
		att := e.text("tr.attachment")
		if !strings.Contains(att, "Shop receiver") || !strings.Contains(att, "shop") || !strings.Contains(att, "funnel") {
			t.Errorf("attachment row reads %q, want the channel name and both sources", att)
		}
		subID := e.attr("tr.attachment", "data-subscription")
		var sub struct {
			ChannelID  string   `json:"channel_id"`
			EventTypes []string `json:"event_types"`
			Sources    []string `json:"sources"`
		}
		e.api(http.MethodGet, "/v1/tenants/"+tenantID+"/subscriptions/"+url.PathEscape(subID), e.key, nil, http.StatusOK, &sub)
		slices.Sort(sub.Sources)
		if sub.ChannelID != channelID || !slices.Equal(sub.EventTypes, []string{typ}) || !slices.Equal(sub.Sources, []string{"funnel", "shop"}) {
			t.Errorf("API subscription %s = %+v, want channel %s, [%s], sources [funnel shop]", subID, sub, channelID, typ)
		}
		e.mustHave("tr.attachment form.edit-attachment")
		e.mustHave("tr.attachment form.remove-attachment")
		e.shot("notification")
	})
	if !attached {
		return
	}

	// The catalog's own example is valid data for the type.
	var example json.RawMessage
	{
		var cat struct {
			Data []struct {
				Name    string          `json:"name"`
				Example json.RawMessage `json:"example"`
			} `json:"data"`
		}
		e.api(http.MethodGet, "/v1/event-types", e.key, nil, http.StatusOK, &cat)
		for _, et := range cat.Data {
			if et.Name == typ {
				example = et.Example
			}
		}
		if example == nil {
			t.Fatalf("the catalog has no example for %s", typ)
		}
	}
	publish := func() string {
		var res struct {
			ID         string `json:"id"`
			Deliveries int    `json:"deliveries"`
		}
		e.api(http.MethodPost, "/v1/tenants/"+tenantID+"/events", e.key,
			map[string]any{"type": typ, "source": "shop", "data": example}, http.StatusAccepted, &res)
		if res.Deliveries != 1 {
			e.t.Fatalf("published event %s goes to %d channels, want 1", res.ID, res.Deliveries)
		}
		return res.ID
	}
	deliveryOf := func(eventID string) string {
		var lst struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		e.api(http.MethodGet, "/v1/tenants/"+tenantID+"/deliveries?event_id="+url.QueryEscape(eventID), e.key, nil, http.StatusOK, &lst)
		if len(lst.Data) != 1 {
			e.t.Fatalf("event %s has %d deliveries, want 1", eventID, len(lst.Data))
		}
		return lst.Data[0].ID
	}

	e.run(t, "DeliveriesAndRetry", func(t *testing.T) {
		okEvent := publish()
		okDelivery := deliveryOf(okEvent)
		okRow := fmt.Sprintf("tr[data-delivery=%q]", okDelivery)
		e.waitText(tp+"/deliveries", okRow+" .status", "succeeded")
		e.mustHave(okRow + " a.delivery-link")
		e.contract("form#filter select[name=status]", "form#filter select[name=channel_id]", "form#filter select[name=event_type]",
			"form#filter input[name=since]", "form#filter input[name=until]")

		// The log refreshes itself (htmx polling the page): a delivery
		// published while the page is open shows up, settled, without a
		// reload.
		live := fmt.Sprintf("tr[data-delivery=%q] .status", deliveryOf(publish()))
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(e.text(live), "succeeded"); {
			if time.Now().After(deadline) {
				t.Fatalf("the open deliveries page did not show %s as succeeded within 10 s; it reads %q", live, e.text(live))
			}
			time.Sleep(200 * time.Millisecond)
		}

		e.recv.failNext.Store(1)
		badEvent := publish()
		bad := deliveryOf(badEvent)
		badRow := fmt.Sprintf("tr[data-delivery=%q]", bad)
		e.waitText(tp+"/deliveries", badRow+" .status", "failed") // standard policy: 400 is permanent
		e.shot("deliveries")

		e.recv.failNext.Store(0)
		e.submit(badRow + " a.delivery-link")
		if !strings.HasSuffix(e.location(), tp+"/deliveries/"+bad) {
			t.Fatalf("the delivery link led to %s", e.location())
		}
		if got := e.text(".delivery-status"); !strings.Contains(got, "failed") {
			t.Fatalf(".delivery-status = %q, want failed", got)
		}
		if n := e.count("tr.attempt"); n != 1 {
			t.Errorf("a failed delivery shows %d attempts, want 1", n)
		}
		e.submit("form#retry button")
		if !strings.HasSuffix(e.location(), "/deliveries/"+bad) && !strings.Contains(e.location(), "/deliveries/"+bad+"?") {
			t.Errorf("retry landed on %s, want the delivery's page", e.location())
		}
		e.waitText(tp+"/deliveries/"+bad, ".delivery-status", "succeeded")
		if n := e.count("tr.attempt"); n != 2 {
			t.Errorf("after a retry the delivery shows %d attempts, want 2", n)
		}
		e.shot("delivery")

		// Events: find by id, see the payload and where it went.
		e.openOK(tp+"/events", fmt.Sprintf("tr[data-event=%q] a.event-link", okEvent))
		e.shot("events")
		e.fill("form#find input[name=q]", okEvent)
		e.submit("form#find button[type=submit]")
		if !strings.Contains(e.location(), tp+"/events/"+okEvent) {
			t.Errorf("finding %s landed on %s", okEvent, e.location())
		}
		e.openOK(tp+"/events/"+okEvent, "pre#payload")
		if e.count("tr.event-delivery") != 1 {
			t.Errorf("the event page shows %d deliveries, want 1", e.count("tr.event-delivery"))
		}
		e.shot("event")

		e.openOK("/catalog", fmt.Sprintf("section[data-type=%q]", typ))
		e.mustHave("#verify")
		e.shot("catalog")
	})

	e.run(t, "PhoneWidth", func(t *testing.T) {
		e.do(chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile))
		defer e.do(chromedp.ResetViewport())
		for _, p := range []struct{ path, name string }{
			{tp + "/notifications", "notifications-phone"},
			{tp + "/deliveries", "deliveries-phone"},
		} {
			e.openOK(p.path, "main")
			e.shot(p.name)
			// Wide tables scroll inside .table-wrap; the page itself must not.
			if w := run(e, chromedp.Evaluate[int]("document.documentElement.scrollWidth")); w > 375 {
				t.Errorf("%s is %d px wide at a 375 px viewport", p.path, w)
			}
		}
	})

	// Channels of other kinds show what they are; an action channel shows
	// its request template and never its token.
	e.run(t, "ActionChannel", func(t *testing.T) {
		const token = "xoxb-browser-test-token-123"
		var ch struct {
			ID string `json:"id"`
		}
		e.api("POST", "/v1/tenants/"+tenantID+"/channels", e.key, map[string]any{
			"kind": "action", "preset": "hipcall", "name": "CRM", "url": e.recv.URL,
			"action": map[string]any{"secrets": map[string]string{"token": token}, "options": map[string]string{"operation": "create_task"}},
		}, http.StatusCreated, &ch)
		e.openOK(tp+"/channels", fmt.Sprintf("tr[data-channel=%q]", ch.ID))
		if got := e.text(fmt.Sprintf("tr[data-channel=%q] .badge", ch.ID)); !strings.Contains(got, "action") {
			t.Errorf("the list marks the action channel %q", got)
		}
		e.openOK(tp+"/channels/"+ch.ID, "pre.action-body")
		if got := e.text(".channel-kind"); !strings.Contains(got, "hipcall") {
			t.Errorf(".channel-kind reads %q", got)
		}
		if got := e.text("pre.action-body"); !strings.Contains(got, "summary()") {
			t.Errorf("the request template shows %q", got)
		}
		if e.count("form#rotate") != 0 {
			t.Error("an action channel offers to rotate a signing secret it does not have")
		}
		if strings.Contains(run(e, chromedp.Evaluate[string]("document.documentElement.outerHTML")), token) {
			t.Error("the channel page shows the action's token")
		}
	})

	// A merchant makes an action channel from a preset by filling one
	// form. A refused form keeps what was typed except the token, which
	// no page, URL or answer ever shows.
	e.run(t, "ActionChannelForm", func(t *testing.T) {
		const token = "hipcall-form-token-5f2c9a7e"
		html := func() string {
			return run(e, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
		}
		fillHipcall := func(name, op string) {
			e.fill("form#create-action input[name=name]", name)
			e.fill("form#create-action select[name=preset]", "hipcall")
			e.fill("form#create-action input[name=url]", e.recv.URL)
			e.fill("form#create-action select[name=operation]", op)
		}
		var before struct {
			Data []json.RawMessage `json:"data"`
		}
		e.api(http.MethodGet, "/v1/tenants/"+tenantID+"/channels", e.key, nil, http.StatusOK, &before)
		e.openOK(tp+"/channels", "form#create-action")
		e.contract("form#create-channel", "form#create-action select[name=preset] option[value=slack]",
			"form#create-action select[name=preset] option[value=hipcall]", "form#create-action input[name=url]",
			"form#create-action input[name=token][type=password][autocomplete=off]",
			"form#create-action select[name=operation] option[value=create_task]")

		// Hipcall without a token: the API's reason under the token field,
		// everything else kept.
		fillHipcall("Hipcall follow-ups", "create_task")
		e.submit("form#create-action button[type=submit]")
		if !strings.HasSuffix(e.location(), tp+"/channels/actions") {
			t.Fatalf("a refused form landed on %s, want the list page again", e.location())
		}
		if got := e.text("form#create-action fieldset.preset-hipcall p.field-error"); !strings.Contains(got, "required") {
			t.Errorf("the token's error reads %q; the page says: %s", got, e.mainText())
		}
		if e.count("form#create-channel p.field-error") != 0 {
			t.Error("the webhook form shows the action form's errors")
		}
		for sel, want := range map[string]string{"form#create-action input[name=name]": "Hipcall follow-ups",
			"form#create-action input[name=url]": e.recv.URL} {
			if got := run(e, chromedp.Evaluate[string](fmt.Sprintf("document.querySelector(%s).value", jsString(sel)))); got != want {
				t.Errorf("%s kept %q, want %q", sel, got, want)
			}
		}
		for sel, want := range map[string]string{"form#create-action select[name=preset]": "hipcall", "form#create-action select[name=operation]": "create_task"} {
			if got := run(e, chromedp.Evaluate[string](fmt.Sprintf("document.querySelector(%s).value", jsString(sel)))); got != want {
				t.Errorf("%s kept %q, want %q", sel, got, want)
			}
		}
		e.shot("channels-action-refused")

		// A token with an operation Hipcall does not have (a tampered
		// form): the operation's error, and the token is not echoed.
		e.do(chromedp.Evaluate[chromedp.Void](`(function(){var s=document.querySelector("form#create-action select[name=operation]");
			var o=document.createElement("option");o.value="delete_everything";o.textContent="x";s.appendChild(o);s.value="delete_everything"})()`))
		e.fill("form#create-action input[name=token]", token)
		e.submit("form#create-action button[type=submit]")
		if got := e.text("form#create-action fieldset.preset-hipcall p.field-error"); !strings.Contains(got, "not a Hipcall operation") {
			t.Errorf("the operation's error reads %q; the page says: %s", got, e.mainText())
		}
		if strings.Contains(html(), token) || strings.Contains(e.location(), token) {
			t.Error("a refused form echoes the token")
		}
		if got := e.attr("form#create-action input[name=token]", "value"); got != "" {
			t.Errorf("the token field came back with %q", got)
		}

		// Right: the channel's page, with its request template.
		fillHipcall("Hipcall follow-ups", "create_task")
		e.fill("form#create-action input[name=token]", token)
		e.submit("form#create-action button[type=submit]")
		loc, _ := url.Parse(e.location())
		prefix := tp + "/channels/"
		if !strings.HasPrefix(loc.Path, prefix) || strings.Contains(strings.TrimPrefix(loc.Path, prefix), "/") || loc.Path == prefix+"actions" {
			t.Fatalf("creating an action channel landed on %s, want its page; it says: %s", loc, e.mainText())
		}
		id := strings.TrimPrefix(loc.Path, prefix)
		if strings.Contains(loc.String(), token) {
			t.Error("the token is in the URL")
		}
		if got := e.text("p.flash"); got != "Action channel created." {
			t.Errorf("the flash reads %q", got)
		}
		if got := e.text(".channel-kind"); !strings.Contains(got, "hipcall") {
			t.Errorf(".channel-kind reads %q", got)
		}
		e.mustHave("pre.action-body")
		if got := e.text("pre.action-body"); !strings.Contains(got, "Follow up") {
			t.Errorf("the request template is not create_task's: %q", got)
		}
		if strings.Contains(html(), token) {
			t.Error("the new channel's page shows the token")
		}
		e.shot("channel-action")

		var ch struct {
			Kind   string `json:"kind"`
			Name   string `json:"name"`
			URL    string `json:"url"`
			Action struct {
				Preset  string            `json:"preset"`
				Options map[string]string `json:"options"`
				Secrets map[string]string `json:"secrets"`
			} `json:"action"`
		}
		e.api(http.MethodGet, "/v1/tenants/"+tenantID+"/channels/"+url.PathEscape(id), e.key, nil, http.StatusOK, &ch)
		if ch.Kind != "action" || ch.Name != "Hipcall follow-ups" || ch.Action.Preset != "hipcall" || ch.Action.Options["operation"] != "create_task" ||
			ch.Action.Secrets["token"] != "***" || ch.URL != e.recv.URL+"/api/v3/tasks" {
			t.Errorf("the API has %+v, want a hipcall create_task action to %s/api/v3/tasks with a token", ch, e.recv.URL)
		}
		var after struct {
			Data []json.RawMessage `json:"data"`
		}
		e.api(http.MethodGet, "/v1/tenants/"+tenantID+"/channels", e.key, nil, http.StatusOK, &after)
		if len(after.Data) != len(before.Data)+1 {
			t.Errorf("%d channels after the form, %d before: want one more (a refused form made one?)", len(after.Data), len(before.Data))
		}
	})

	e.run(t, "CSRF", func(t *testing.T) {
		c := e.cookie("herald_session")
		if c == nil {
			t.Fatal("no session cookie in the browser")
		}
		post := func(form url.Values) int {
			req, _ := http.NewRequest(http.MethodPost, e.base+tp+"/notifications/"+typ+"/toggle", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if st := post(url.Values{"enabled": {"false"}}); st != http.StatusForbidden {
			t.Errorf("toggle without csrf: status %d, want 403", st)
		}
		if st := post(url.Values{"enabled": {"false"}, "csrf": {"forged"}}); st != http.StatusForbidden {
			t.Errorf("toggle with a wrong csrf: status %d, want 403", st)
		}
		if !typeEnabled(e, typ) {
			t.Error("a refused form still turned the event off")
		}
	})

	e.run(t, "Operator", func(t *testing.T) {
		// Signing in again replaces the tenant's session.
		if got := e.signIn(adminKey); !strings.HasSuffix(got, "/operator/tenants") {
			t.Fatalf("the operator key landed on %s, want /operator/tenants; it says: %s", got, e.mainText())
		}
		e.mustHave(fmt.Sprintf("tr[data-tenant=%q]", tenantID))

		e.fill("form#create-tenant input[name=id]", "globex")
		e.fill("form#create-tenant input[name=name]", "Globex Corporation")
		e.submit("form#create-tenant button[type=submit]")
		newKey := e.text("#new-key")
		if !strings.HasPrefix(newKey, "hk_") {
			t.Fatalf("#new-key = %q, want an hk_ key; the page says: %s", newKey, e.mainText())
		}
		if strings.Contains(e.location(), newKey) {
			t.Error("the new key is in the URL")
		}
		e.mustHave(`tr[data-tenant="globex"]`)
		e.shot("tenants")
		var who struct {
			TenantID string `json:"tenant_id"`
		}
		e.api(http.MethodGet, "/v1/whoami", newKey, nil, http.StatusOK, &who)
		if who.TenantID != "globex" {
			t.Errorf("the shown key belongs to %q, want globex", who.TenantID)
		}
		// Reloading does not show it again.
		e.openOK("/operator/tenants", `tr[data-tenant="globex"]`)
		if e.count("#new-key") != 0 {
			t.Error("the key is shown again on a plain visit")
		}

		// A bad id comes back with the API's reason next to the field.
		e.fill("form#create-tenant input[name=id]", "globex")
		e.fill("form#create-tenant input[name=name]", "Globex again")
		e.submit("form#create-tenant button[type=submit]")
		if e.count("p.error") == 0 {
			t.Errorf("creating a duplicate tenant shows no error: %s", e.mainText())
		}

		e.submit(`tr[data-tenant="globex"] a`)
		e.mustHave("tr[data-key]")
		if got := e.attr("a#open-tenant", "href"); got != "/t/globex/notifications" {
			t.Errorf("a#open-tenant href = %q", got)
		}
		e.submit("form#create-key button[type=submit]")
		second := e.text("#new-key")
		if !strings.HasPrefix(second, "hk_") || e.count("tr[data-key]") != 2 {
			t.Fatalf("after creating a key: #new-key %q, %d key rows", second, e.count("tr[data-key]"))
		}
		e.shot("tenant")
		e.submit("tr[data-key] form.revoke-key button")
		if n := e.count("tr[data-key] form.revoke-key"); n != 1 {
			t.Errorf("after revoking one of two keys, %d can still be revoked", n)
		}
		// The newest key is listed first, so the one just shown is revoked.
		e.api(http.MethodGet, "/v1/whoami", second, nil, http.StatusUnauthorized, nil)
		e.api(http.MethodGet, "/v1/whoami", newKey, nil, http.StatusOK, nil)

		e.submit("a#open-tenant")
		if !strings.HasSuffix(e.location(), "/t/globex/notifications") {
			t.Errorf("a#open-tenant led to %s", e.location())
		}
	})
}
