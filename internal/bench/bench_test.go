package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhooks"
)

// TestSmoke runs every scenario small: the checks (nothing lost, every
// signature valid) are what matter here, not the speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario")
	}
	results, err := Run(context.Background(), Config{Events: 2000, Backlog: 3000, Rate: 200, Duration: 2e9, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(Scenarios) {
		t.Fatalf("%d results for %d scenarios", len(results), len(Scenarios))
	}
	if raw := results[0]; raw.Scenario != "raw" || raw.Deliveries < minRawRequests {
		t.Errorf("raw sent %d requests in a small run; it sends at least %d however small the run", raw.Deliveries, minRawRequests)
	}
	raw := results[0].DeliveredPerSec
	for _, r := range results {
		if r.Lost != 0 || r.BadSignatures != 0 || r.DeliveredPerSec <= 0 || r.Seconds <= 0 {
			t.Errorf("%s: %+v", r.Scenario, r)
		}
		if want := Machine(Config{}); r.Machine != want {
			t.Errorf("%s: run on %q, want %q", r.Scenario, r.Machine, want)
		}
		if want := r.AcknowledgedPerSec / raw; r.Scenario != "raw" && r.AckRatioToRaw != want {
			t.Errorf("%s: acknowledgements at %.3f × raw, reported as %.3f", r.Scenario, want, r.AckRatioToRaw)
		}
		switch r.Scenario {
		case "publish":
			if r.AcknowledgedPerSec <= 0 {
				t.Errorf("publish acknowledged nothing: %+v", r)
			}
		case "isolation":
			// Four runs with dead channels and four without, each
			// checking the same 18 healthy channels' deliveries.
			if want := 8 * 18 * (2000 / 20); r.Deliveries != want {
				t.Errorf("isolation checked %d deliveries, want %d", r.Deliveries, want)
			}
		}
		t.Logf("%-9s delivered/s %8.0f  x raw %.3f  p99 %.1f ms  peak RSS %d MiB  dup %d", r.Scenario, r.DeliveredPerSec, r.RatioToRaw, r.P99ms, r.PeakRSSBytes>>20, r.Duplicates)
	}
}

// TestAnswerID reads ids from publish answers: by the quick scan, by
// decoding when the id has an escape, and refusing an answer with none.
func TestAnswerID(t *testing.T) {
	for _, c := range []struct{ answer, id string }{
		{`{"id":"evt_1","deliveries":1,"delivery_ids":["dlv_2"]}`, "evt_1"},
		{`{"deliveries":1,"delivery_ids":["dlv_2"],"id":"evt_3"}`, "evt_3"},
		{`{"id":"evt_\u0034"}`, "evt_4"},
		{`{"delivery_ids":["dlv_2"]}`, ""},
		{`{"id":""}`, ""},
	} {
		id, err := answerID([]byte(c.answer))
		if id != c.id || (err == nil) != (c.id != "") {
			t.Errorf("answerID(%s) = %q, %v; want %q", c.answer, id, err, c.id)
		}
	}
}

// testBench is the bench TestProfile and TestRepeat run, with the herald
// command's collector settings: 20,000 events (or HERALD_EVENTS) from the
// default publishers (or HERALD_CONCURRENCY), and the scenario
// HERALD_PROFILE_SCENARIO names (default burst), on embedded SQLite or the
// PostgreSQL database HERALD_DATABASE names.
func testBench() (*bench, string) {
	// As cmd/herald's main sets them: without its memory limit, a test
	// binary misses what the collector costs near it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(200 << 20)
	}
	scenario := os.Getenv("HERALD_PROFILE_SCENARIO")
	if scenario == "" {
		scenario = "burst"
	}
	events, _ := strconv.Atoi(os.Getenv("HERALD_EVENTS"))
	if events <= 0 {
		events = 20000
	}
	conc, _ := strconv.Atoi(os.Getenv("HERALD_CONCURRENCY"))
	cfg := Config{Events: events, Backlog: 300000, Database: os.Getenv("HERALD_DATABASE"), Concurrency: conc}.withDefaults()
	return &bench{cfg: cfg, data: eventData(cfg.DataBytes)}, scenario
}

// TestProfile writes a CPU profile of one scenario, without the raw run
// before it, when HERALD_PROFILE names a file: HERALD_PROFILE_SCENARIO
// picks it (default burst; "publish" is publishing alone, 30,000
// single-event requests with delivery held back; "drain" is delivery
// alone, 30,000 deliveries from a backlog). HERALD_TRACE names a
// file for an execution trace of the same run (scheduling and blocking:
// go tool trace -pprof=sched).
func TestProfile(t *testing.T) {
	out := os.Getenv("HERALD_PROFILE")
	if out == "" {
		t.Skip("set HERALD_PROFILE=cpu.out (and HERALD_PROFILE_SCENARIO) to profile a scenario")
	}
	b, scenario := testBench()
	ctx := context.Background()
	profile := func(run func() error) {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		if tf := os.Getenv("HERALD_TRACE"); tf != "" {
			w, err := os.Create(tf)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := trace.Start(w); err != nil {
				t.Fatal(err)
			}
			defer trace.Stop()
		}
		err = run()
		pprof.StopCPUProfile()
		if err != nil {
			t.Fatal(err)
		}
	}
	if scenario == "drain" {
		gate := make(chan struct{})
		r, err := b.newRig(ctx, gate, []string{"/drain"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		const n = 30000
		if _, err := b.fillBacklog(ctx, r, n); err != nil {
			t.Fatal(err)
		}
		profile(func() error {
			start, cpu := time.Now(), cpuTime()
			close(gate)
			if !r.rc.waitFor(ctx, n, time.Minute) {
				return fmt.Errorf("%d of %d delivered", r.rc.count.Load(), n)
			}
			t.Logf("delivery alone: %.0f/s, %.0f µs of CPU per delivery", perSec(n, time.Since(start)), perDelivery(cpuTime()-cpu, n))
			return nil
		})
		return
	}
	if scenario != "publish" {
		profile(func() error {
			r, err := b.run(ctx, scenario)
			t.Logf("%+v", r)
			return err
		})
		return
	}
	r, err := b.newRig(ctx, make(chan struct{}), []string{"/publish"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	const n = 30000
	profile(func() error {
		cpu := cpuTime()
		_, d, err := b.publishAll(ctx, r.h, n)
		t.Logf("publishing alone: %.0f/s, %.0f µs of CPU per publish", perSec(n, d), perDelivery(cpuTime()-cpu, n))
		return err
	})
}

// TestRepeat runs one scenario HERALD_REPEAT times without raw and logs
// each run's CPU per delivery: build two test binaries (go test -c) and
// alternate them to compare changes to Herald's code.
func TestRepeat(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HERALD_REPEAT"))
	if n <= 0 {
		t.Skip("set HERALD_REPEAT=N (and HERALD_PROFILE_SCENARIO) to repeat a scenario")
	}
	b, scenario := testBench()
	for range n {
		r0, w0 := ioCalls()
		r, err := b.run(context.Background(), scenario)
		if err != nil {
			t.Fatal(err)
		}
		r1, w1 := ioCalls()
		per := func(calls int64) float64 { return float64(calls) / float64(max(r.Deliveries, 1)) }
		fmt.Printf("%s cpu_us_per_delivery %.0f acknowledged_per_sec %.0f delivered_per_sec %.0f p50_ms %.2f p99_ms %.2f handed_off %d peak_rss_mib %d reads_per_delivery %.2f writes_per_delivery %.2f %s\n",
			scenario, r.CPUPerDeliveryUS, r.AcknowledgedPerSec, r.DeliveredPerSec, r.P50ms, r.P99ms, r.HandedOff, r.PeakRSSBytes>>20, per(r1-r0), per(w1-w0), r.Note)
	}
}

// ioCalls returns how many read and write system calls the process has
// made (sockets and files alike, from Linux's /proc/self/io; zero
// elsewhere). System calls are a fifth to a third of a burst's CPU here,
// and their count does not drift with the machine as their cost does.
func ioCalls() (reads, writes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(b)) {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch name {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// TestMachine: the machine line names the processor (on Linux, as
// /proc/cpuinfo gives it), the CPUs, the Go version and the store.
func TestMachine(t *testing.T) {
	got := Machine(Config{})
	for _, want := range []string{fmt.Sprintf("%d CPUs", runtime.NumCPU()), runtime.Version(), "store: embedded SQLite"} {
		if !strings.Contains(got, want) {
			t.Errorf("Machine() = %q, want it to hold %q", got, want)
		}
	}
	if runtime.GOOS == "linux" && strings.HasPrefix(got, "unknown processor") {
		t.Errorf("Machine() = %q: no processor model on Linux", got)
	}
	if got := Machine(Config{Database: "postgres://x"}); !strings.HasSuffix(got, "store: PostgreSQL") {
		t.Errorf("Machine() with a database = %q, want it to name PostgreSQL", got)
	}
}

// TestReceiverChecks shows that the receiver's checks can fail: over real
// HTTP, a request signed with another secret is counted bad and refused,
// a delivery that never arrives is lost, and one that arrives twice is a
// duplicate.
func TestReceiverChecks(t *testing.T) {
	rc, err := newReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.close()
	secret, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.reset(map[string]string{"/c": secret}, nil); err != nil {
		t.Fatal(err)
	}
	send := func(sec, id string) int {
		t.Helper()
		s, err := webhooks.NewSigner(sec)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"id":"` + id + `"}`)
		req, err := http.NewRequest(http.MethodPost, rc.url+"/c", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		s.SetHeaders(req.Header, id, time.Now(), body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(secret, "evt_1"); code != http.StatusNoContent {
		t.Errorf("a well-signed delivery was answered %d", code)
	}
	send(secret, "evt_2")
	send(secret, "evt_2")
	if code := send(other, "evt_3"); code != http.StatusBadRequest {
		t.Errorf("a delivery signed with another secret was answered %d", code)
	}
	if bad := rc.bad.Load(); bad != 1 {
		t.Errorf("%d bad signatures counted, want 1", bad)
	}
	lost, dups := rc.tally([]string{"/c"}, []string{"evt_1", "evt_2", "evt_3", "evt_4"})
	if lost != 2 || dups != 1 {
		t.Errorf("tally = %d lost, %d duplicates; want 2 lost (evt_3 refused, evt_4 never sent), 1 duplicate", lost, dups)
	}
}
