package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/bench"
	"github.com/heraldhq/herald/internal/testenv"
)

// These tests run several herald processes on one PostgreSQL database.

// countingReceiver records every request by path and webhook-id.
func countingReceiver(t *testing.T, delay time.Duration) (*httptest.Server, *tally) {
	tl := &tally{seen: map[string]map[string]int{}}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if delay > 0 {
			time.Sleep(delay)
		}
		tl.add(r.URL.Path, r.Header.Get("webhook-id"))
		w.WriteHeader(204)
	}))
	t.Cleanup(rc.Close)
	return rc, tl
}

func (tl *tally) total() (requests, duplicates int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, m := range tl.seen {
		for _, n := range m {
			requests += n
			duplicates += n - 1
		}
	}
	return
}

// waitAll waits until every id reached every path.
func (tl *tally) waitAll(t *testing.T, paths, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		missing := tl.missing(paths, ids)
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries never arrived", missing, len(paths)*len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishBatches publishes n events in batches of 500, round robin over
// procs, and returns the acknowledged ids.
func publishBatches(t *testing.T, procs []*proc, key string, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; len(ids) < n; i++ {
		size := min(500, n-len(ids))
		items := make([]any, size)
		for j := range items {
			items[j] = map[string]any{"type": "order.completed", "source": "shop", "data": orderData}
		}
		m := procs[i%len(procs)].mustPost(t, "/v1/tenants/acme/events/batch", key, map[string]any{"events": items}, 202)
		for _, e := range m["events"].([]any) {
			ids = append(ids, e.(map[string]any)["id"].(string))
		}
	}
	return ids
}

func cluster(t *testing.T, db string, n int, extra ...string) []*proc {
	var procs []*proc
	for range n {
		procs = append(procs, startProc(t, t.TempDir(), freePort(t), append([]string{"--database", db}, extra...)...))
	}
	return procs
}

// TestClusterDeliversEachOnce: three processes share the work of 20,000
// events to three channels; every delivery arrives exactly once.
func TestClusterDeliversEachOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 events through three processes")
	}
	db := testenv.PostgresDB(t)
	rc, tl := countingReceiver(t, 0)
	procs := cluster(t, db, 3)
	paths := []string{"/a", "/b", "/c"}
	key := setupTenant(t, procs[0], rc.URL, paths)
	start := time.Now()
	ids := publishBatches(t, procs, key, 20000)
	tl.waitAll(t, paths, ids, 3*time.Minute)
	requests, dups := tl.total()
	t.Logf("%d deliveries by 3 processes in %v", requests, time.Since(start).Round(time.Millisecond))
	if dups != 0 {
		t.Fatalf("%d deliveries arrived twice although nothing crashed", dups)
	}
}

// TestClusterSIGKILLOneProcess kills one of three processes mid-run: every
// event still arrives, and only what that process had in flight arrives
// twice.
func TestClusterSIGKILLOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a process")
	}
	db := testenv.PostgresDB(t)
	rc, tl := countingReceiver(t, 2*time.Millisecond)
	// Short leases so the dead process's deliveries come back within
	// seconds: the 15 s default timeout plus 1 s of slack.
	procs := cluster(t, db, 3, "--lease-slack", "1s")
	paths := []string{"/a", "/b", "/c"}
	key := setupTenant(t, procs[0], rc.URL, paths)
	ids := publishBatches(t, procs, key, 6000)
	// Kill once a good part has been delivered.
	for {
		if n, _ := tl.total(); n > 3000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := procs[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tl.waitAll(t, paths, ids, 3*time.Minute)
	_, dups := tl.total()
	// At most each channel's in-flight limit (16) was in flight at the
	// victim when it died.
	if dups > 3*16 {
		t.Fatalf("%d duplicates; only the killed process's in-flight requests (at most 48) may repeat", dups)
	}
	t.Logf("all %d deliveries arrived; %d duplicates from the killed process", len(ids)*len(paths), dups)
}

// TestNotifyWakesIdleWorker: with a poll interval of an hour, only
// LISTEN/NOTIFY can make the worker deliver promptly.
func TestNotifyWakesIdleWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	db := testenv.PostgresDB(t)
	rc, tl := countingReceiver(t, 0)
	apiProc := startProc(t, t.TempDir(), freePort(t), "--database", db, "--role", "api")
	key := setupTenant(t, apiProc, rc.URL, []string{"/a"})
	startProc(t, t.TempDir(), freePort(t), "--database", db, "--role", "worker", "--poll-interval", "1h")
	time.Sleep(300 * time.Millisecond) // the worker's first poll has passed
	for i := range 3 {
		start := time.Now()
		m := apiProc.mustPost(t, "/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "data": orderData}, 202)
		tl.waitAll(t, []string{"/a"}, []string{m["id"].(string)}, 5*time.Second)
		t.Logf("publish %d delivered %v after it was acknowledged", i, time.Since(start).Round(time.Millisecond))
	}
}

// TestAPIRoleDeliversNothing: an api process stores and answers, and
// leaves delivery to workers.
func TestAPIRoleDeliversNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	db := testenv.PostgresDB(t)
	rc, tl := countingReceiver(t, 0)
	apiProc := startProc(t, t.TempDir(), freePort(t), "--database", db, "--role", "api")
	key := setupTenant(t, apiProc, rc.URL, []string{"/a"})
	m := apiProc.mustPost(t, "/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "data": orderData}, 202)
	time.Sleep(time.Second)
	if n, _ := tl.total(); n != 0 {
		t.Fatalf("the api process delivered %d requests", n)
	}
	startProc(t, t.TempDir(), freePort(t), "--database", db, "--role", "worker")
	tl.waitAll(t, []string{"/a"}, []string{m["id"].(string)}, 10*time.Second)
}

// TestPostgresRestart stops the database mid-run: publishes during the
// outage answer 503, nothing acknowledged is lost, and publishing and
// delivery resume by themselves.
func TestPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a private PostgreSQL")
	}
	pg := testenv.PrivatePostgres(t)
	rc, tl := countingReceiver(t, 0)
	procs := cluster(t, pg.URL(), 2)
	key := setupTenant(t, procs[0], rc.URL, []string{"/a"})

	var mu sync.Mutex
	var acked []string
	statuses := map[int]int{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				status, m, err := procs[g%2].post("/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "data": orderData})
				mu.Lock()
				switch {
				case err != nil:
					statuses[-1]++
				case status == 202:
					acked = append(acked, m["id"].(string))
					statuses[status]++
				default:
					statuses[status]++
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	pg.Stop()
	time.Sleep(1500 * time.Millisecond)
	pg.Start()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("answers: %v", statuses)
	if statuses[503] == 0 {
		t.Fatal("no publish answered 503 while the database was down")
	}
	for status, n := range statuses {
		if status != 202 && status != 503 {
			t.Errorf("%d publishes answered %d; only 202 or 503 are acceptable", n, status)
		}
	}
	// Publishing resumed after the restart.
	m := procs[0].mustPost(t, "/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "data": orderData}, 202)
	acked = append(acked, m["id"].(string))
	tl.waitAll(t, []string{"/a"}, acked, time.Minute)
	t.Logf("%d acknowledged events all delivered after the restart", len(acked))
}

// TestClusterChannelLimits: a channel's in-flight limit and rate limit hold
// across three processes, not per process.
func TestClusterChannelLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	db := testenv.PostgresDB(t)
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	var arrivals []time.Time
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		time.Sleep(150 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		w.WriteHeader(204)
	}))
	defer rc.Close()
	procs := cluster(t, db, 3)
	key := procs[0].mustPost(t, "/v1/tenants", testAdminKey, map[string]any{"id": "acme", "name": "Acme"}, 201)["api_key"].(string)
	limited := procs[0].mustPost(t, "/v1/tenants/acme/channels", key, map[string]any{"name": "in-flight", "url": rc.URL + "/a", "max_in_flight": 2}, 201)["id"].(string)
	procs[0].mustPost(t, "/v1/tenants/acme/subscriptions", key, map[string]any{"channel_id": limited, "event_types": []string{"order.completed"}}, 201)
	// waitFor waits until n have arrived and in flight satisfies ok.
	waitFor := func(n int, ok func(inFlight int) bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			got, now := len(arrivals), inFlight
			mu.Unlock()
			if got >= n && ok(now) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d arrived, %d in flight", got, n, now)
			}
		}
	}
	anyInFlight := func(int) bool { return true }
	publishBatches(t, procs, key, 30)
	waitFor(30, anyInFlight)
	// Each round, one process has both slots busy when another is asked
	// to deliver more: the other's claim may queue none of them (it would
	// start its queue by its own count), and may start one only when a
	// slot frees.
	for i := range 3 {
		base := 30 + i*12
		publishBatches(t, procs[i:i+1], key, 2)
		waitFor(base+2, func(n int) bool { return n == 2 })
		publishBatches(t, procs[(i+1)%3:(i+1)%3+1], key, 10)
		waitFor(base+12, func(n int) bool { return n == 0 })
	}
	mu.Lock()
	if len(arrivals) != 66 || maxInFlight > 2 {
		t.Fatalf("%d arrived, at most %d at once; want 66 with never more than 2 at once", len(arrivals), maxInFlight)
	}
	arrivals = nil
	mu.Unlock()

	// Rate: 4 a second shared by all processes (each alone would allow 4).
	if status, m, err := procs[0].request("PATCH", "/v1/tenants/acme/channels/"+limited, key,
		map[string]any{"rate_limit_per_sec": 4, "max_in_flight": 16}); err != nil || status != 200 {
		t.Fatalf("patch channel: %d %v %v", status, m, err)
	}
	start := time.Now()
	publishBatches(t, procs, key, 12)
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		n := len(arrivals)
		mu.Unlock()
		if n >= 12 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 12 {
		t.Fatalf("%d of 12 arrived", len(arrivals))
	}
	if span := arrivals[11].Sub(start); span < 2500*time.Millisecond {
		t.Fatalf("12 events at 4/s across three processes arrived within %v; want at least 2.75 s", span)
	}
}

// TestConcurrentMigrate: several processes migrating one fresh database at
// once all succeed, and each migration is applied once.
func TestConcurrentMigrate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	db := testenv.PostgresDB(t)
	bin := heraldBinary(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	outs := make([][]byte, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = exec.Command(bin, "migrate", "--database", db).CombinedOutput()
		}()
	}
	wg.Wait()
	applied := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrate %d: %v\n%s", i, err, outs[i])
		}
		applied += strings.Count(string(outs[i]), "migration applied")
	}
	files, _ := filepath.Glob("../../internal/postgres/migrations/*.sql")
	if applied != len(files) || applied == 0 {
		t.Fatalf("migrations applied %d times in all, want each of the %d once", applied, len(files))
	}
}

// TestClusterConfigSeenEverywhere: each process caches configuration, yet
// a change made through one process holds on the next request to another.
func TestClusterConfigSeenEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	db := testenv.PostgresDB(t)
	rc, _ := countingReceiver(t, 0)
	procs := cluster(t, db, 2)
	a, b := procs[0], procs[1]
	key := a.mustPost(t, "/v1/tenants", testAdminKey, map[string]any{"id": "acme", "name": "Acme"}, 201)["api_key"].(string)
	event := map[string]any{"type": "order.completed", "data": orderData}
	if m := b.mustPost(t, "/v1/tenants/acme/events", key, event, 202); m["deliveries"].(float64) != 0 {
		t.Fatalf("before any channel: %v", m)
	}
	ch := a.mustPost(t, "/v1/tenants/acme/channels", key, map[string]any{"name": "a", "url": rc.URL + "/a"}, 201)["id"].(string)
	a.mustPost(t, "/v1/tenants/acme/subscriptions", key, map[string]any{"channel_id": ch, "event_types": []string{"order.*"}}, 201)
	if m := b.mustPost(t, "/v1/tenants/acme/events", key, event, 202); m["deliveries"].(float64) != 1 {
		t.Fatalf("a subscription made through one process was not used by the other: %v", m)
	}
	if status, m, err := a.request("PATCH", "/v1/tenants/acme/event-types/order.completed", key, map[string]any{"enabled": false}); err != nil || status != 200 {
		t.Fatalf("toggle: %d %v %v", status, m, err)
	}
	if m := b.mustPost(t, "/v1/tenants/acme/events", key, event, 202); m["suppressed"] != true {
		t.Fatalf("a toggle made through one process was not seen by the other: %v", m)
	}
	keys := a.mustPost(t, "/v1/tenants/acme/api-keys", key, map[string]any{}, 201)
	second := keys["api_key"].(string)
	b.mustPost(t, "/v1/tenants/acme/events", second, event, 202)
	if status, _, err := a.request("DELETE", "/v1/tenants/acme/api-keys/"+keys["id"].(string), key, nil); err != nil || status != 204 {
		t.Fatalf("revoke: %d %v", status, err)
	}
	if status, _, _ := b.post("/v1/tenants/acme/events", second, event); status != 401 {
		t.Fatalf("a key revoked through one process still works on the other: %d", status)
	}
}

// TestClusterDisableWhileClaiming turns a channel off and on again and
// again while two processes claim its deliveries. Both lock the channel
// and then its deliveries (skipping locked ones); an earlier claim locked
// deliveries first and deadlocked with disabling (PostgreSQL aborts one
// with 40P01, a 500). Neither order may come back.
func TestClusterDisableWhileClaiming(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	db := testenv.PostgresDB(t)
	rc, _ := countingReceiver(t, time.Millisecond)
	procs := cluster(t, db, 2)
	key := setupTenant(t, procs[0], rc.URL, []string{"/a"})
	var ch string
	if status, m, err := procs[0].request("GET", "/v1/tenants/acme/channels", key, nil); err != nil || status != 200 {
		t.Fatalf("list channels: %d %v", status, err)
	} else {
		ch = m["data"].([]any)[0].(map[string]any)["id"].(string)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishBatches(t, procs, key, 4000)
	}()
	for i := range 40 {
		p := procs[i%2]
		for _, body := range []map[string]any{{"enabled": false}, {"enabled": true}} {
			if status, m, err := p.request("PATCH", "/v1/tenants/acme/channels/"+ch, key, body); err != nil || status != 200 {
				t.Fatalf("round %d: PATCH %v answered %d %v %v", i, body, status, m, err)
			}
		}
		if status, m, err := p.post("/v1/tenants/acme/channels/"+ch+"/recover", key, map[string]any{"since": since}); err != nil || status != 202 {
			t.Fatalf("round %d: recover answered %d %v %v", i, status, m, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-done
}

// TestBenchShowsHeraldWarnings: herald bench prints Herald's own warnings
// on stderr (on PostgreSQL, the one about autovacuum exactly when the
// server has it off) and nothing else of Herald's log.
func TestBenchShowsHeraldWarnings(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a small benchmark on PostgreSQL")
	}
	ctx := context.Background()
	db := testenv.PostgresDB(t)
	var out, errOut bytes.Buffer
	if err := Main(ctx, []string{"bench", "burst", "--events", "200", "--concurrency", "16", "--database", db}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	autovacuum := testenv.Setting(t, db, "autovacuum")
	if warned := strings.Contains(errOut.String(), "autovacuum is off"); warned != (autovacuum == "off") {
		t.Errorf("autovacuum %s, warning shown %v; stderr:\n%s", autovacuum, warned, errOut.String())
	}
	if strings.Contains(errOut.String(), "level=INFO") {
		t.Errorf("bench printed Herald's info log:\n%s", errOut.String())
	}
	if !strings.Contains(out.String(), "burst") {
		t.Errorf("no burst result:\n%s", out.String())
	}
	if want := "machine: " + bench.Machine(bench.Config{Database: db}); !strings.Contains(out.String(), want) {
		t.Errorf("no line %q:\n%s", want, out.String())
	}
}
