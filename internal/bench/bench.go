// Package bench measures Herald on this machine: it starts Herald in
// process (embedded SQLite, or PostgreSQL when given a URL) and a local
// receiver that checks every request's signature, runs bounded scenarios
// over loopback, and reports each scenario's delivery rate as a ratio to
// what a plain Go client achieves against the same receiver in the same
// run, because absolute numbers on shared machines drift.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldhq/herald/internal/server"
	"github.com/heraldhq/herald/webhooks"
)

// Scenarios, in the order they run.
var Scenarios = []string{"raw", "burst", "publish", "fanout", "latency", "isolation", "backlog"}

// Config says what to run.
type Config struct {
	Scenarios []string
	// Events is the number of events of burst and fanout (and requests of raw).
	Events int
	// Backlog is the number of pending deliveries the backlog scenario drains.
	Backlog int
	// Rate and Duration shape the latency scenario.
	Rate     int
	Duration time.Duration
	// Database is a postgres:// URL; empty runs on embedded SQLite.
	Database string
	// Concurrency is how many publishers run at once.
	Concurrency int
	// DataBytes is the size of each event's data.
	DataBytes int
	Log       *slog.Logger
}

// Result is one scenario's outcome.
type Result struct {
	Scenario           string  `json:"scenario"`
	Events             int     `json:"events"`
	Deliveries         int     `json:"deliveries"`
	Seconds            float64 `json:"seconds"`
	AcknowledgedPerSec float64 `json:"acknowledged_per_sec"`
	DeliveredPerSec    float64 `json:"delivered_per_sec"`
	RatioToRaw         float64 `json:"ratio_to_raw"`
	// AckRatioToRaw is AcknowledgedPerSec as a ratio to raw's rate.
	AckRatioToRaw float64 `json:"ack_ratio_to_raw"`
	P50ms         float64 `json:"p50_ms"`
	P99ms         float64 `json:"p99_ms"`
	P999ms        float64 `json:"p999_ms"`
	Maxms         float64 `json:"max_ms"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	// CPUPerDeliveryUS is the CPU time the whole process (Herald, the
	// benchmark's clients and the receiver) spent per delivery, in
	// microseconds: unlike a rate, it hardly moves with other load on the
	// machine, so it is what to compare when changing Herald's code.
	CPUPerDeliveryUS float64 `json:"cpu_us_per_delivery"`
	Lost             int     `json:"lost"`
	Duplicates       int     `json:"duplicates"`
	BadSignatures    int     `json:"bad_signatures"`
	// HandedOff is how many deliveries went straight from publishing to
	// the dispatcher, without a claim (embedded SQLite only).
	HandedOff int64  `json:"handed_off"`
	Note      string `json:"note,omitempty"`
	// Machine says where the run took place (see Machine).
	Machine string `json:"machine"`
}

// ErrLost is returned when a scenario lost or corrupted a delivery.
var ErrLost = errors.New("deliveries were lost or arrived with a bad signature")

// Run runs the scenarios and returns their results; raw always runs first
// because every other rate is a ratio to it.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	cfg = cfg.withDefaults()
	want := cfg.Scenarios
	if len(want) == 0 {
		want = Scenarios
	}
	for _, s := range want {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q; scenarios: %s", s, strings.Join(Scenarios, ", "))
		}
	}
	b := &bench{cfg: cfg, data: eventData(cfg.DataBytes)}
	var results []Result
	machine := Machine(cfg)
	raw, err := b.raw(ctx)
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	raw.Machine = machine
	if slices.Contains(want, "raw") {
		results = append(results, raw)
	}
	var lost bool
	for _, name := range Scenarios[1:] {
		if !slices.Contains(want, name) {
			continue
		}
		r, err := b.run(ctx, name)
		if err != nil {
			return results, fmt.Errorf("%s: %w", name, err)
		}
		if raw.DeliveredPerSec > 0 {
			r.RatioToRaw = r.DeliveredPerSec / raw.DeliveredPerSec
			r.AckRatioToRaw = r.AcknowledgedPerSec / raw.DeliveredPerSec
		}
		r.Machine = machine
		lost = lost || r.Lost > 0 || r.BadSignatures > 0
		results = append(results, r)
	}
	if lost {
		return results, ErrLost
	}
	return results, nil
}

// run runs one scenario other than raw.
func (b *bench) run(ctx context.Context, name string) (Result, error) {
	switch name {
	case "burst":
		return b.burst(ctx)
	case "publish":
		return b.publish(ctx)
	case "fanout":
		return b.fanout(ctx)
	case "latency":
		return b.latency(ctx)
	case "isolation":
		return b.isolation(ctx)
	case "backlog":
		return b.backlog(ctx)
	}
	return Result{}, fmt.Errorf("unknown scenario %q", name)
}

// withDefaults fills in what cfg leaves unset.
func (cfg Config) withDefaults() Config {
	if cfg.Events <= 0 {
		cfg.Events = 100_000
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = 1_000_000
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1000
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 512
	}
	if cfg.DataBytes <= 0 {
		cfg.DataBytes = 1024
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg
}

type bench struct {
	cfg  Config
	data json.RawMessage
}

// eventData is an order.completed data object of about n bytes.
func eventData(n int) json.RawMessage {
	base := `{"order":{"id":"1001","state":"complete","buyer_email":"jane@example.com","buyer_name":"Jane Doe","settled_currency":"USD","settled_gross":"49.00","note":"`
	pad := max(0, n-len(base)-4)
	return json.RawMessage(base + strings.Repeat("x", pad) + `"}}`)
}

// receiver is the local endpoint every scenario delivers to. Paths name
// channels; each path's requests are checked against its secret.
type receiver struct {
	srv      *http.Server
	url      string
	mu       sync.Mutex
	verifier map[string]*webhooks.Verifier
	seen     map[string]map[string]int // path -> webhook-id -> count
	arrived  map[string]time.Time      // webhook-id -> first arrival (latency)
	track    bool
	hang     map[string]bool // paths that never answer
	// With index set (sorted ids), arrivals are counted in counts instead
	// of seen: a million ids then cost megabytes, not a large map in the
	// memory the backlog scenario measures.
	index  []string
	counts []uint8
	count  atomic.Int64
	bad    atomic.Int64
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rc := &receiver{url: "http://" + ln.Addr().String(), verifier: map[string]*webhooks.Verifier{},
		seen: map[string]map[string]int{}, arrived: map[string]time.Time{}, hang: map[string]bool{}}
	rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
	return rc, nil
}

func (rc *receiver) close() { _ = rc.srv.Close() }

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	now := time.Now()
	rc.mu.Lock()
	v, hang := rc.verifier[r.URL.Path], rc.hang[r.URL.Path]
	rc.mu.Unlock()
	if hang {
		<-r.Context().Done() // answer never; Herald's timeout ends it
		return
	}
	if v == nil { // the raw scenario: no signature
		rc.count.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := v.Verify(body, r.Header); err != nil {
		rc.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := r.Header.Get(webhooks.HeaderID)
	rc.mu.Lock()
	if rc.index != nil {
		if i, ok := slices.BinarySearch(rc.index, id); ok && rc.counts[i] < 255 {
			rc.counts[i]++
		}
		rc.mu.Unlock()
		rc.count.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	m := rc.seen[r.URL.Path]
	if m == nil {
		m = map[string]int{}
		rc.seen[r.URL.Path] = m
	}
	m[id]++
	if rc.track {
		if _, ok := rc.arrived[id]; !ok {
			rc.arrived[id] = now
		}
	}
	rc.mu.Unlock()
	rc.count.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// reset forgets everything received and sets the paths' secrets.
func (rc *receiver) reset(secrets map[string]string, hang []string) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.verifier = map[string]*webhooks.Verifier{}
	for path, sec := range secrets {
		v, err := webhooks.NewVerifier(sec)
		if err != nil {
			return err
		}
		rc.verifier[path] = v
	}
	rc.hang = map[string]bool{}
	for _, p := range hang {
		rc.hang[p] = true
	}
	rc.seen = map[string]map[string]int{}
	rc.arrived = map[string]time.Time{}
	rc.count.Store(0)
	rc.bad.Store(0)
	return nil
}

// tally counts lost and duplicate deliveries of ids on paths.
func (rc *receiver) tally(paths, ids []string) (lost, dups int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.index != nil {
		for _, n := range rc.counts {
			switch {
			case n == 0:
				lost++
			case n > 1:
				dups += int(n) - 1
			}
		}
		return lost, dups
	}
	for _, p := range paths {
		for _, id := range ids {
			switch n := rc.seen[p][id]; {
			case n == 0:
				lost++
			case n > 1:
				dups += n - 1
			}
		}
	}
	return lost, dups
}

// waitFor waits until n requests arrived or the timeout passed.
func (rc *receiver) waitFor(ctx context.Context, n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for rc.count.Load() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// herald is one in-process Herald for a scenario.
type herald struct {
	srv    *server.Server
	base   string
	client *http.Client         // set-up requests
	pub    *fasthttp.HostClient // publishes (see publish)
	key    string
	stop   func()
}

const adminKey = "bench-admin-key-0123456789abcdef"

func (b *bench) startHerald(ctx context.Context, gate <-chan struct{}) (*herald, error) {
	dir, err := os.MkdirTemp("", "herald-bench")
	if err != nil {
		return nil, err
	}
	cfg := server.Config{Listen: "127.0.0.1:0", DataDir: dir, Database: b.cfg.Database, AdminKey: adminKey,
		AllowedTargetCIDRs: "127.0.0.0/8", DeliveryGate: gate, ShutdownTimeout: 5 * time.Second}
	srv, stop, err := server.Start(ctx, cfg, b.cfg.Log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	h := &herald{srv: srv, base: "http://" + srv.Addr(),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}, Timeout: 5 * time.Minute},
		// A publish waits for a connection rather than failing: latency's
		// publishers do not wait for answers, and when Herald falls behind
		// (on PostgreSQL it did) more than MaxConns of them are out at once.
		pub: &fasthttp.HostClient{Addr: srv.Addr(), MaxConns: 1024, MaxConnWaitTimeout: 5 * time.Minute}}
	h.stop = func() { _ = stop(); h.pub.CloseIdleConnections(); os.RemoveAll(dir) }
	// A fresh tenant per scenario keeps runs on one PostgreSQL apart.
	tenant := fmt.Sprintf("bench%d", time.Now().UnixNano())
	var t struct {
		APIKey string `json:"api_key"`
	}
	if err := h.do("POST", "/v1/tenants", adminKey, map[string]string{"id": tenant, "name": "bench"}, &t); err != nil {
		h.stop()
		return nil, err
	}
	h.key = t.APIKey
	h.base += "/v1/tenants/" + tenant
	return h, nil
}

func (h *herald) do(method, path, key string, in, out any) error {
	b, _ := json.Marshal(in)
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// channel creates a channel to the receiver's path, subscribed to
// order.completed, and returns its secret. It has Herald's defaults, as a
// user's channel would, but for what extra sets.
func (h *herald) channel(url string, extra map[string]any) (string, error) {
	body := map[string]any{"name": url, "url": url}
	for k, v := range extra {
		body[k] = v
	}
	var ch struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := h.do("POST", "/channels", h.key, body, &ch); err != nil {
		return "", err
	}
	err := h.do("POST", "/subscriptions", h.key, map[string]any{"channel_id": ch.ID, "event_types": []string{"order.completed"}}, nil)
	return ch.Secret, err
}

// publishAll publishes n single events from the configured number of
// publishers and returns their ids with each one's acknowledgement time.
func (b *bench) publishAll(ctx context.Context, h *herald, n int) ([]string, time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"type": "order.completed", "source": "shop", "data": b.data})
	ids := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range b.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := h.publishRequest(body), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				id, err := h.send(req, resp)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	return ids, time.Since(start), firstErr
}

// publishRequest returns a request that publishes body, for a publisher
// to send again and again (send): its URI and headers are set once.
//
// The publishers use fasthttp's client rather than net/http's because
// they share the machine with Herald: net/http's client cost about twice
// as much CPU per request (two goroutines per connection), a sixth of a
// burst's CPU, and every microsecond the load generator takes is one
// Herald does not get. raw keeps the plain net/http client the ceiling
// is defined by.
func (h *herald) publishRequest(body []byte) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(h.base + "/events")
	req.Header.SetMethod("POST")
	req.Header.Set("Authorization", "Bearer "+h.key)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	return req
}

// publish sends one event through the publishers' client.
func (h *herald) publish(body []byte) (string, error) {
	req, resp := h.publishRequest(body), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	return h.send(req, resp)
}

// send sends a publish request and returns the event's id.
func (h *herald) send(req *fasthttp.Request, resp *fasthttp.Response) (string, error) {
	if err := h.pub.DoTimeout(req, resp, 5*time.Minute); err != nil {
		return "", err
	}
	if resp.StatusCode() != http.StatusAccepted {
		return "", fmt.Errorf("publish answered %d: %s", resp.StatusCode(), resp.Body())
	}
	return answerID(resp.Body())
}

// answerID reads the event's id from a publish's answer. Herald's ids
// hold no character that JSON escapes, so a scan for the member finds it at
// a tenth of the cost of decoding the answer, which was a tenth of the
// publishers' CPU; anything else is decoded.
func answerID(answer []byte) (string, error) {
	const key = `"id":"`
	if i := bytes.Index(answer, []byte(key)); i >= 0 {
		rest := answer[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j > 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return string(rest[:j]), nil
		}
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(answer, &out); err != nil || out.ID == "" {
		return "", fmt.Errorf("publish answer without an id: %s", answer)
	}
	return out.ID, nil
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// minRawRequests is the least raw sends, however small the run: a short
// raw run is mostly a cold client opening its connections and read about a
// quarter lower (20,000 against 100,000 requests here), which made the
// ratios of small runs look better than full-size ones.
const minRawRequests = 100_000

// rawClients is how many requests raw keeps in flight, whatever the
// publishers' concurrency: the plain client's best here. 32 and 64 read
// the same; 128 read about 10% lower, 256 and 512 a quarter lower
// (2026-12-05), so raw measured at a high publishers' concurrency
// would lower the ceiling and flatter every ratio.
const rawClients = 64

// raw measures the ceiling: a plain keep-alive Go client posting the same
// bodies to the same receiver.
func (b *bench) raw(ctx context.Context) (Result, error) {
	rc, err := newReceiver()
	if err != nil {
		return Result{}, err
	}
	defer rc.close()
	n := max(b.cfg.Events, minRawRequests)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	body, _ := json.Marshal(map[string]any{"id": "evt_x", "type": "order.completed", "data": b.data})
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	start, cpu := time.Now(), cpuTime()
	for range rawClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for int(next.Add(1)) <= n && ctx.Err() == nil {
				resp, err := client.Post(rc.url+"/raw", "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	return Result{Scenario: "raw", Events: n, Deliveries: int(rc.count.Load()), Seconds: d.Seconds(),
		CPUPerDeliveryUS: perDelivery(cpuTime()-cpu, int(rc.count.Load())),
		DeliveredPerSec:  perSec(int(rc.count.Load()), d), Lost: int(failed.Load()), RatioToRaw: 1}, nil
}

// rig is one scenario's set-up: a receiver, a Herald, and a channel per
// path, subscribed to order.completed, whose secrets the receiver checks.
type rig struct {
	rc *receiver
	h  *herald
}

// newRig builds a rig. Channels take extra settings; hang lists paths
// that never answer; gate, when set, holds delivery back.
func (b *bench) newRig(ctx context.Context, gate <-chan struct{}, paths []string, extra map[string]any, hang []string) (*rig, error) {
	rc, err := newReceiver()
	if err != nil {
		return nil, err
	}
	h, err := b.startHerald(ctx, gate)
	if err != nil {
		rc.close()
		return nil, err
	}
	r := &rig{rc: rc, h: h}
	secrets := map[string]string{}
	for _, p := range paths {
		if secrets[p], err = h.channel(rc.url+p, extra); err != nil {
			r.close()
			return nil, err
		}
	}
	if err := rc.reset(secrets, hang); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *rig) close() {
	r.h.stop()
	r.rc.close()
}

// deliverRun publishes n events to channels paths and waits for all
// deliveries; it is the core of burst and fanout.
func (b *bench) deliverRun(ctx context.Context, name string, n int, paths []string) (Result, error) {
	r, err := b.newRig(ctx, nil, paths, nil, nil)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	rc, h := r.rc, r.h
	start, cpu := time.Now(), cpuTime()
	ids, ackTime, err := b.publishAll(ctx, h, n)
	if err != nil {
		return Result{}, err
	}
	want := int64(n * len(paths))
	rc.waitFor(ctx, want, time.Duration(n)*time.Millisecond+time.Minute)
	d := time.Since(start)
	cpuPer := perDelivery(cpuTime()-cpu, int(want))
	lost, dups := rc.tally(paths, ids)
	return Result{Scenario: name, Events: n, Deliveries: int(want), Seconds: d.Seconds(), CPUPerDeliveryUS: cpuPer,
		AcknowledgedPerSec: perSec(n, ackTime), DeliveredPerSec: perSec(int(want)-lost, d), HandedOff: h.srv.DispatchStats().HandedOff,
		Lost: lost, Duplicates: dups, BadSignatures: int(rc.bad.Load())}, nil
}

func (b *bench) burst(ctx context.Context) (Result, error) {
	return b.deliverRun(ctx, "burst", b.cfg.Events, []string{"/burst"})
}

// publish measures publishing alone: the burst's events are acknowledged
// with delivery held back, so nothing competes with them for the cores;
// then delivery is let go and drains them alone.
func (b *bench) publish(ctx context.Context) (Result, error) {
	gate := make(chan struct{})
	r, err := b.newRig(ctx, gate, []string{"/publish"}, nil, nil)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	n := b.cfg.Events
	cpu := cpuTime()
	ids, ackTime, err := b.publishAll(ctx, r.h, n)
	if err != nil {
		return Result{}, err
	}
	pubCPU := cpuTime() - cpu
	start := time.Now()
	close(gate)
	r.rc.waitFor(ctx, int64(n), time.Duration(n)*time.Millisecond+time.Minute)
	d := time.Since(start)
	lost, dups := r.rc.tally([]string{"/publish"}, ids)
	return Result{Scenario: "publish", Events: n, Deliveries: n, Seconds: (ackTime + d).Seconds(),
		AcknowledgedPerSec: perSec(n, ackTime), DeliveredPerSec: perSec(n-lost, d),
		CPUPerDeliveryUS: perDelivery(cpuTime()-cpu, n), Lost: lost, Duplicates: dups, BadSignatures: int(r.rc.bad.Load()),
		Note: fmt.Sprintf("publishing with delivery held back (%.0f µs of CPU per publish), then delivery alone", perDelivery(pubCPU, n))}, nil
}

func (b *bench) fanout(ctx context.Context) (Result, error) {
	paths := make([]string, 100)
	for i := range paths {
		paths[i] = "/fanout/" + strconv.Itoa(i)
	}
	r, err := b.deliverRun(ctx, "fanout", max(1, b.cfg.Events/100), paths)
	r.Note = "100 channels on one event type"
	return r, err
}

// latency publishes at a fixed rate and measures from each publish's
// acknowledgement to its arrival at the receiver.
func (b *bench) latency(ctx context.Context) (Result, error) {
	r, err := b.newRig(ctx, nil, []string{"/latency"}, nil, nil)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	rc, h := r.rc, r.h
	rc.mu.Lock()
	rc.track = true
	rc.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"type": "order.completed", "source": "shop", "data": b.data})
	n := int(float64(b.cfg.Rate) * b.cfg.Duration.Seconds())
	interval := time.Second / time.Duration(b.cfg.Rate)
	var mu sync.Mutex
	acked := make(map[string]time.Time, n)
	ids := make([]string, 0, n)
	var wg sync.WaitGroup
	var firstErr error
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		// Open loop: the schedule does not wait for answers.
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := h.publish(body)
			at := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			acked[id] = at
			ids = append(ids, id)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	rc.waitFor(ctx, int64(len(ids)), time.Minute)
	d := time.Since(start)
	rc.mu.Lock()
	lat := make([]float64, 0, len(ids))
	for _, id := range ids {
		if arr, ok := rc.arrived[id]; ok {
			lat = append(lat, max(0, float64(arr.Sub(acked[id]).Microseconds())/1000))
		}
	}
	rc.mu.Unlock()
	lost, dups := rc.tally([]string{"/latency"}, ids)
	slices.Sort(lat)
	res := Result{Scenario: "latency", Events: len(ids), Deliveries: len(ids), Seconds: d.Seconds(),
		AcknowledgedPerSec: perSec(len(ids), d), DeliveredPerSec: perSec(len(ids)-lost, d),
		Lost: lost, Duplicates: dups, BadSignatures: int(rc.bad.Load()), HandedOff: h.srv.DispatchStats().HandedOff,
		Note: fmt.Sprintf("%d/s for %s; from acknowledgement to arrival", b.cfg.Rate, b.cfg.Duration)}
	res.P50ms, res.P99ms, res.P999ms = quantile(lat, 0.50), quantile(lat, 0.99), quantile(lat, 0.999)
	if len(lat) > 0 {
		res.Maxms = lat[len(lat)-1]
	}
	return res, nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// isolation compares healthy channels' delivery rate with and without 10%
// of channels that never answer.
func (b *bench) isolation(ctx context.Context) (Result, error) {
	// Every run has the same 18 healthy channels; those with dead ones
	// have two more channels, subscribed to the same events, that never
	// answer. The healthy channels' rates are compared.
	n := max(1, b.cfg.Events/20)
	run := func(dead bool) (float64, int, int, error) {
		var all, healthy, hang []string
		for i := range 20 {
			p := "/iso/" + strconv.Itoa(i)
			switch {
			case i >= 2:
				healthy = append(healthy, p)
			case dead:
				hang = append(hang, p)
			default:
				continue
			}
			all = append(all, p)
		}
		r, err := b.newRig(ctx, nil, all, map[string]any{"timeout_s": 2, "max_in_flight": 16}, hang)
		if err != nil {
			return 0, 0, 0, err
		}
		defer r.close()
		rc, h := r.rc, r.h
		start := time.Now()
		ids, _, err := b.publishAll(ctx, h, n)
		if err != nil {
			return 0, 0, 0, err
		}
		want := int64(n * len(healthy))
		rc.waitFor(ctx, want, time.Duration(n)*time.Millisecond+time.Minute)
		d := time.Since(start)
		lost, dups := rc.tally(healthy, ids)
		return perSec(int(want)-lost, d), lost, dups, nil
	}
	// Four runs each, in the order without, with, with, without, then the
	// reverse, compared by their means: one pair of runs moved by 10%
	// either way with the machine's drift (and a process's first run
	// starts cold), this order cancels a steady drift instead of landing
	// it on one side, and with two runs each the mean still moved by up to
	// a tenth between full runs (86–109%).
	order := []bool{false, true, true, false, true, false, false, true}
	half := float64(len(order) / 2)
	r := Result{Scenario: "isolation"}
	var base float64
	began := time.Now()
	for _, dead := range order {
		rate, lost, dups, err := run(dead)
		if err != nil {
			return Result{}, err
		}
		r.Events, r.Deliveries = r.Events+n, r.Deliveries+n*18
		r.Lost, r.Duplicates = r.Lost+lost, r.Duplicates+dups
		if dead {
			r.DeliveredPerSec += rate / half
		} else {
			base += rate / half
		}
	}
	r.Seconds = time.Since(began).Seconds()
	withDead := r.DeliveredPerSec
	if base > 0 {
		r.Note = fmt.Sprintf("healthy channels kept %.0f%% of their rate with 2 of 20 channels hanging (%.0f/s without)", 100*withDead/base, base)
	}
	return r, nil
}

// fillBacklog publishes n events in batches of 1,000 while delivery is
// held back and has the receiver count their arrivals in its index.
func (b *bench) fillBacklog(ctx context.Context, r *rig, n int) ([]string, error) {
	item, _ := json.Marshal(map[string]any{"type": "order.completed", "source": "shop", "data": b.data})
	ids := make([]string, 0, n)
	for len(ids) < n && ctx.Err() == nil {
		size := min(1000, n-len(ids))
		batch := bytes.Repeat(append(append([]byte{}, item...), ','), size)
		body := append(append([]byte(`{"events":[`), batch[:len(batch)-1]...), ']', '}')
		var res struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if err := r.h.do("POST", "/events/batch", r.h.key, json.RawMessage(body), &res); err != nil {
			return nil, err
		}
		for _, e := range res.Events {
			ids = append(ids, e.ID)
		}
	}
	slices.Sort(ids)
	r.rc.mu.Lock()
	r.rc.index, r.rc.counts = ids, make([]uint8, len(ids))
	r.rc.mu.Unlock()
	return ids, nil
}

// backlog builds a backlog of pending deliveries with delivery held back,
// then drains it, sampling the process's resident memory.
func (b *bench) backlog(ctx context.Context) (Result, error) {
	gate := make(chan struct{})
	r, err := b.newRig(ctx, gate, []string{"/backlog"}, nil, nil)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	rc := r.rc
	n := b.cfg.Backlog
	ids, err := b.fillBacklog(ctx, r, n)
	if err != nil {
		return Result{}, err
	}
	before := rss()
	stopSampling := make(chan struct{})
	peak := make(chan int64)
	go func() {
		p := before
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				peak <- p
				return
			case <-t.C:
				p = max(p, rss())
			}
		}
	}()
	start, cpu := time.Now(), cpuTime()
	close(gate)
	rc.waitFor(ctx, int64(n), time.Duration(n)*time.Millisecond+time.Minute)
	d := time.Since(start)
	cpuPer := perDelivery(cpuTime()-cpu, n)
	close(stopSampling)
	p := <-peak
	lost, dups := rc.tally([]string{"/backlog"}, ids)
	return Result{Scenario: "backlog", Events: n, Deliveries: n, Seconds: d.Seconds(), DeliveredPerSec: perSec(n-lost, d),
		PeakRSSBytes: p, Lost: lost, Duplicates: dups, BadSignatures: int(rc.bad.Load()), CPUPerDeliveryUS: cpuPer,
		Note: fmt.Sprintf("RSS %d MiB before draining", before>>20)}, nil
}

// rss is this process's resident memory in bytes (Linux), 0 elsewhere.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// cpuTime is the CPU time (user and system) this process has used (Linux),
// 0 elsewhere.
func cpuTime() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th, in clock ticks
	// of 1/100 s on Linux.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func perDelivery(cpu time.Duration, n int) float64 {
	if n <= 0 || cpu <= 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}
