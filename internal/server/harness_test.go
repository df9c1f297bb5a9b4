package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/server"
	"github.com/heraldhq/herald/internal/testenv"
)

// The tests in this package run the real server — SQLite file, dispatcher,
// API on a real listener — against real local HTTP receivers. Only the
// scheduling clock is fake, so retry schedules of hours are crossed by
// moving it forward instead of waiting.

const adminKey = "test-admin-key-0123456789"

// herald is one running server under test.
type herald struct {
	t      *testing.T
	srv    *server.Server
	base   string
	clock  *testenv.Clock
	dir    string
	cancel context.CancelFunc
	done   chan error
}

type option func(*server.Config)

func startHerald(t *testing.T, opts ...option) *herald {
	t.Helper()
	dir := t.TempDir()
	return startHeraldIn(t, dir, opts...)
}

func startHeraldIn(t *testing.T, dir string, opts ...option) *herald {
	t.Helper()
	clock := &testenv.Clock{}
	cfg := server.Config{
		Listen:             "127.0.0.1:0",
		DataDir:            dir,
		AdminKey:           adminKey,
		AllowedTargetCIDRs: "127.0.0.0/8",
		PollInterval:       25 * time.Millisecond,
		ShutdownTimeout:    5 * time.Second,
		Synchronous:        "NORMAL", // durability is proven by the SIGKILL test on FULL
		Clock:              clock,
	}
	for _, o := range opts {
		o(&cfg)
	}
	level := slog.LevelWarn
	if os.Getenv("HERALD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("open server: %v", err)
	}
	h := &herald{t: t, srv: srv, base: "http://" + srv.Addr(), clock: clock, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- srv.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

// stop shuts the server down gracefully (idempotent).
func (h *herald) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("server stopped with error: %v", err)
		}
	case <-time.After(20 * time.Second):
		h.t.Errorf("server did not stop within 20s")
	}
}

// advance moves the scheduling clock and wakes the dispatcher.
func (h *herald) advance(d time.Duration) {
	h.clock.Advance(d)
	h.srv.Wake()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// response is an API answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map.
func (r response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// call sends a request with key as Bearer (none when empty). body may be
// nil, a []byte / string sent as it is, or a value encoded as JSON.
func (h *herald) call(method, path, key string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// must sends a request and fails the test unless the status is want.
func (h *herald) must(want int, method, path, key string, body any, headers ...string) map[string]any {
	h.t.Helper()
	r := h.call(method, path, key, body, headers...)
	if r.Status != want {
		h.t.Fatalf("%s %s: got %s, want %d", method, path, r, want)
	}
	return r.JSON()
}

// tenant creates a tenant and returns its id and key.
func (h *herald) tenant(id string) (string, string) {
	h.t.Helper()
	m := h.must(201, "POST", "/v1/tenants", adminKey, map[string]any{"id": id, "name": "Tenant " + id})
	return m["id"].(string), m["api_key"].(string)
}

// channel creates a webhook channel and returns its id and secret.
func (h *herald) channel(tenant, key, url string, extra map[string]any) (string, string) {
	h.t.Helper()
	body := map[string]any{"name": "receiver", "url": url}
	for k, v := range extra {
		body[k] = v
	}
	m := h.must(201, "POST", "/v1/tenants/"+tenant+"/channels", key, body)
	return m["id"].(string), m["secret"].(string)
}

// subscribe attaches a channel to event types (and optional sources/filter).
func (h *herald) subscribe(tenant, key, channelID string, types []string, sources []string, filter string) string {
	h.t.Helper()
	body := map[string]any{"channel_id": channelID, "event_types": types}
	if sources != nil {
		body["sources"] = sources
	}
	if filter != "" {
		body["filter"] = filter
	}
	return h.must(201, "POST", "/v1/tenants/"+tenant+"/subscriptions", key, body)["id"].(string)
}

// publish publishes one event and returns the answer.
func (h *herald) publish(tenant, key, typ, source string, data any, headers ...string) map[string]any {
	h.t.Helper()
	return h.must(202, "POST", "/v1/tenants/"+tenant+"/events", key,
		map[string]any{"type": typ, "source": source, "data": data}, headers...)
}

// example returns the catalog example data of an event type.
func (h *herald) example(typ string) map[string]any {
	h.t.Helper()
	m := h.must(200, "GET", "/v1/event-types", adminKey, nil)
	for _, raw := range m["data"].([]any) {
		et := raw.(map[string]any)
		if et["name"] == typ {
			return et["example"].(map[string]any)
		}
	}
	h.t.Fatalf("no event type %s in the catalog", typ)
	return nil
}

// delivery fetches one delivery with its attempt log.
func (h *herald) delivery(tenant, key, id string) map[string]any {
	h.t.Helper()
	return h.must(200, "GET", "/v1/tenants/"+tenant+"/deliveries/"+id, key, nil)
}

// deliveries lists deliveries with a query string.
func (h *herald) deliveries(tenant, key, query string) []map[string]any {
	h.t.Helper()
	m := h.must(200, "GET", "/v1/tenants/"+tenant+"/deliveries?"+query, key, nil)
	var out []map[string]any
	for _, d := range m["data"].([]any) {
		out = append(out, d.(map[string]any))
	}
	return out
}

// waitDelivery polls until the delivery satisfies cond.
func (h *herald) waitDelivery(tenant, key, id string, what string, cond func(d map[string]any) bool) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := h.delivery(tenant, key, id)
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("delivery %s never %s; last: %v", id, what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStatus waits for a delivery to reach status with attempts made.
func (h *herald) waitStatus(tenant, key, id, status string, attempts int) map[string]any {
	h.t.Helper()
	return h.waitDelivery(tenant, key, id, fmt.Sprintf("reached %s after %d attempts", status, attempts), func(d map[string]any) bool {
		return d["status"] == status && int(d["attempts"].(float64)) == attempts
	})
}

// received is one request a receiver got.
type received struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is a local webhook endpoint whose answers a test scripts.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	handler func(n int, w http.ResponseWriter, r *http.Request)
	arrived chan struct{}
}

// newReceiver starts a receiver; handler (nil: answer 204) is called with
// the 1-based number of the request.
func newReceiver(t *testing.T, handler func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{handler: handler, arrived: make(chan struct{}, 1<<16)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(rc.got)
		rc.mu.Unlock()
		select {
		case rc.arrived <- struct{}{}:
		default:
		}
		if rc.handler != nil {
			rc.handler(n, w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// requests returns what arrived so far.
func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// hits counts the requests that arrived on path, so one receiver can stand
// for several channels. It reads what waitN counts: a request waitN has
// seen is never missing here.
func (rc *receiver) hits(path string) int {
	n := 0
	for _, q := range rc.requests() {
		if q.Path == path {
			n++
		}
	}
	return n
}

// waitN waits until at least n requests arrived.
func (rc *receiver) waitN(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if got := rc.requests(); len(got) >= n {
			return got
		}
		select {
		case <-rc.arrived:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("receiver %s got %d requests, want %d", rc.URL, len(rc.requests()), n)
		}
	}
}

// quiet asserts no more than n requests arrive within d.
func (rc *receiver) quiet(t *testing.T, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if got := len(rc.requests()); got != n {
		t.Fatalf("receiver got %d requests, want exactly %d", got, n)
	}
}

// payload decodes a received body.
func (r received) payload() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}
