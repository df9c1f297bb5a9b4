package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the real herald binary as a separate process, so they can
// kill it the way an operating system or an operator would.

const testAdminKey = "process-test-admin-key-0123456789"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func heraldBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "herald")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one herald serve process.
type proc struct {
	cmd  *exec.Cmd
	base string
	logs *bytes.Buffer
	done chan error
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startProc(t *testing.T, dataDir, addr string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--listen", addr, "--data-dir", dataDir, "--poll-interval", "50ms",
		"--allowed-target-cidrs", "127.0.0.0/8", "--shutdown-timeout", "10s"}, extra...)
	cmd := exec.Command(heraldBinary(t), args...)
	cmd.Env = append(os.Environ(), "HERALD_ADMIN_KEY="+testAdminKey)
	p := &proc{cmd: cmd, base: "http://" + addr, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("herald output:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald did not come up: %v\n%s", err, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) post(path, key string, body any) (int, map[string]any, error) {
	return p.request("POST", path, key, body)
}

func (p *proc) request(method, path, key string, body any) (int, map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, p.base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, nil
}

func (p *proc) mustPost(t *testing.T, path, key string, body any, want int) map[string]any {
	t.Helper()
	status, m, err := p.post(path, key, body)
	if err != nil || status != want {
		t.Fatalf("POST %s: %d %v %v, want %d", path, status, m, err, want)
	}
	return m
}

// tally records which event ids each receiver path got, and how often.
type tally struct {
	mu   sync.Mutex
	seen map[string]map[string]int // path -> webhook-id -> count
}

func (tl *tally) add(path, id string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.seen[path] == nil {
		tl.seen[path] = map[string]int{}
	}
	tl.seen[path][id]++
}

func (tl *tally) missing(paths []string, ids []string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, p := range paths {
		for _, id := range ids {
			if tl.seen[p][id] == 0 {
				n++
			}
		}
	}
	return n
}

func setupTenant(t *testing.T, p *proc, receiverURL string, paths []string) string {
	t.Helper()
	key := p.mustPost(t, "/v1/tenants", testAdminKey, map[string]any{"id": "acme", "name": "Acme"}, 201)["api_key"].(string)
	for _, path := range paths {
		ch := p.mustPost(t, "/v1/tenants/acme/channels", key, map[string]any{"name": path, "url": receiverURL + path}, 201)["id"].(string)
		p.mustPost(t, "/v1/tenants/acme/subscriptions", key, map[string]any{"channel_id": ch, "event_types": []string{"*"}}, 201)
	}
	return key
}

var orderData = map[string]any{"order": map[string]any{"id": "1001", "state": "complete", "buyer_email": "jane@example.com",
	"buyer_name": "Jane Doe", "settled_currency": "USD", "settled_gross": "49.00"}}

// TestSIGKILLLosesNothing kills herald with SIGKILL while events are being
// published and delivered, three times, and checks that every acknowledged
// event reaches every channel after restarts, with the same webhook-id.
func TestSIGKILLLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	tl := &tally{seen: map[string]map[string]int{}}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// Slow answers keep deliveries in flight when the kill comes.
		time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
		tl.add(r.URL.Path, r.Header.Get("webhook-id"))
		w.WriteHeader(200)
	}))
	defer rc.Close()
	paths := []string{"/a", "/b"}
	dir, addr := t.TempDir(), freePort(t)
	p := startProc(t, dir, addr)
	key := setupTenant(t, p, rc.URL, paths)

	var mu sync.Mutex
	var acked []string
	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					status, m, err := p.post("/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "source": "shop", "data": orderData})
					if err != nil {
						return // the process is gone
					}
					if status == 202 {
						mu.Lock()
						acked = append(acked, m["id"].(string))
						mu.Unlock()
					} else if status != 503 {
						t.Errorf("publish answered %d %v", status, m)
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		p.done <- nil // for the cleanup
		cancel()
		wg.Wait()
		mu.Lock()
		t.Logf("round %d: %d events acknowledged so far", round, len(acked))
		mu.Unlock()
		p = startProc(t, dir, addr)
	}

	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	if len(ids) < 50 {
		t.Fatalf("only %d events were acknowledged; the test did not exercise anything", len(ids))
	}
	deadline := time.Now().Add(60 * time.Second)
	for tl.missing(paths, ids) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged deliveries never arrived", tl.missing(paths, ids), len(ids)*len(paths))
		}
		time.Sleep(50 * time.Millisecond)
	}
	dups := 0
	tl.mu.Lock()
	for _, m := range tl.seen {
		for _, n := range m {
			dups += n - 1
		}
	}
	tl.mu.Unlock()
	t.Logf("%d acknowledged events reached both channels; %d duplicate requests (at-least-once)", len(ids), dups)
}

// TestSIGTERMFinishesInFlight stops herald with SIGTERM while requests are
// in flight: it waits for them, records them, exits 0, and after a restart
// nothing already answered is sent again.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tl := &tally{seen: map[string]map[string]int{}}
	started := make(chan struct{}, 100)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		tl.add(r.URL.Path, r.Header.Get("webhook-id"))
		w.WriteHeader(204)
	}))
	defer rc.Close()
	dir, addr := t.TempDir(), freePort(t)
	p := startProc(t, dir, addr)
	key := setupTenant(t, p, rc.URL, []string{"/a"})
	var ids []string
	for range 5 {
		m := p.mustPost(t, "/v1/tenants/acme/events", key, map[string]any{"type": "order.completed", "data": orderData}, 202)
		ids = append(ids, m["id"].(string))
	}
	<-started
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- nil
		if err != nil {
			t.Fatalf("herald exited with %v after SIGTERM\n%s", err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("herald did not exit within 15 s of SIGTERM")
	}
	if !strings.Contains(p.logs.String(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", p.logs)
	}
	if got := tl.missing([]string{"/a"}, ids); got != 0 {
		t.Fatalf("%d in-flight deliveries were not finished before exit", got)
	}
	startProc(t, dir, addr) // a restart must not resend what was answered
	time.Sleep(500 * time.Millisecond)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, id := range ids {
		if n := tl.seen["/a"][id]; n != 1 {
			t.Errorf("event %s delivered %d times, want exactly once", id, n)
		}
	}
}
