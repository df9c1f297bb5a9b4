package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/server"
)

// lockedBuffer collects the server's log across goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FuzzPublish posts arbitrary bytes to the publish route of a real server:
// the answer is never a 5xx, every error is problem+json, and an accepted
// event can be read back. The seed corpus runs with every `go test`; fuzz
// with `go test ./internal/server -run '^$' -fuzz FuzzPublish -fuzztime 20s`.
func FuzzPublish(f *testing.F) {
	dir := f.TempDir()
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, server.Config{
		Listen: "127.0.0.1:0", DataDir: dir, AdminKey: adminKey, AllowedTargetCIDRs: "127.0.0.0/8",
		PollInterval: time.Second, ShutdownTimeout: 5 * time.Second, Synchronous: "NORMAL",
	}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		cancel()
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("server stopped with error: %v", err)
		}
		if strings.Contains(logs.String(), "panic") {
			f.Errorf("server log shows a panic:\n%s", logs.String())
		}
	})
	base := "http://" + srv.Addr()
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(t testing.TB, path, key string, body []byte) (int, http.Header, []byte) {
		req, err := http.NewRequest("POST", base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, out
	}
	status, _, body := post(f, "/v1/tenants", adminKey, []byte(`{"id":"fuzz","name":"Fuzz"}`))
	if status != 201 {
		f.Fatalf("create tenant: %d %s", status, body)
	}
	var tenant struct {
		Key string `json:"api_key"`
	}
	_ = json.Unmarshal(body, &tenant)
	// A custom type with a schema, so schema checks run on fuzzed data too.
	if status, _, body := post(f, "/v1/tenants/fuzz/event-types", tenant.Key, []byte(`{"name":"fuzz.thing",
		"schema":{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":0},
		"tags":{"type":"array","items":{"type":"string"},"uniqueItems":true},"child":{"$ref":"#"}}}}`)); status != 201 {
		f.Fatalf("create event type: %d %s", status, body)
	}

	for _, seed := range []string{
		`{"type":"fuzz.thing","data":{"n":1}}`,
		`{"type":"fuzz.thing","source":"shop","occurred_at":"2026-01-02T03:04:05Z","data":{"n":1,"tags":["a","b"],"child":{"n":2}}}`,
		`{"type":"fuzz.thing","data":{"n":-1,"tags":["a","a"],"child":{"n":"x"}}}`,
		`{"type":"payment.succeeded","data":{"payment_id":"p","customer":{"customer_id":"c","email":7}}}`,
		`{"type":"order.completed","idempotency_key":"k1","data":{}}`,
		`{"type":"nope.nothing","data":{}}`,
		`{"type":"fuzz.thing","data":[1]}`,
		`{"type":"fuzz.thing","data":{"n":1e400}}`,
		`{"type":"fuzz.thing","occurred_at":"0001-01-01T00:00:00Z","data":{"n":1}}`,
		`{"type":"fuzz.thing","occurred_at":5,"data":{"n":1}}`,
		"{\"type\":\"fuzz.thing\",\"data\":{\"n\":1,\"s\":\"\xff\"}}",
		`{"type":"fuzz.thing","data":{"n":1}} trailing`,
		`{"type":"fuzz.thing","dat":{}}`,
		`[]`, `null`, `"x"`, `{`, ``, "\x00",
		strings.Repeat("[", 10001),
		`{"type":"fuzz.thing","data":{"child":` + strings.Repeat(`{"child":`, 200) + `{"n":1}` + strings.Repeat("}", 200) + `,"n":0}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		status, hdr, body := post(t, "/v1/tenants/fuzz/events", tenant.Key, in)
		switch {
		case status >= 500:
			t.Fatalf("%q: %d %s", in, status, body)
		case status >= 400:
			var p struct {
				Title  string `json:"title"`
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") || json.Unmarshal(body, &p) != nil ||
				p.Title == "" || p.Detail == "" || p.Status != status {
				t.Fatalf("%q: %d answer is not a problem: %s %s", in, status, hdr.Get("Content-Type"), body)
			}
		default: // accepted: it must be stored
			var ans struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(body, &ans) != nil || ans.ID == "" {
				t.Fatalf("%q: %d without an id: %s", in, status, body)
			}
			req, _ := http.NewRequest("GET", base+"/v1/tenants/fuzz/events/"+ans.ID, nil)
			req.Header.Set("Authorization", "Bearer "+tenant.Key)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%q: accepted as %s but GET answers %d", in, ans.ID, resp.StatusCode)
			}
		}
	})
}
