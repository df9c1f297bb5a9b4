package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/server"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Main(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestCatalogCommand(t *testing.T) {
	out, err := run(t, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"payment.succeeded", "order.completed", "sendowl,system_notifications", "credit.balance_low"} {
		if !strings.Contains(out, want) {
			t.Errorf("catalog output lacks %q", want)
		}
	}
	out, err = run(t, "catalog", "--json", "--group", "refund")
	if err != nil {
		t.Fatal(err)
	}
	var types []map[string]any
	if err := json.Unmarshal([]byte(out), &types); err != nil || len(types) != 2 {
		t.Fatalf("refund group as JSON: %v %s", err, out)
	}
	if _, err := run(t, "catalog", "--group", "nope"); err == nil || !strings.Contains(err.Error(), "groups:") {
		t.Fatalf("unknown group: %v", err)
	}
}

func TestUnknownCommandAndHelp(t *testing.T) {
	if _, err := run(t, "frobnicate"); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %v", err)
	}
	out, err := run(t, "help")
	if err != nil || !strings.Contains(out, "serve") {
		t.Fatalf("help: %v %s", err, out)
	}
	if out, err := run(t, "version"); err != nil || !strings.HasPrefix(out, "herald ") {
		t.Fatalf("version: %v %s", err, out)
	}
}

// TestConfigPrecedence: flag > HERALD_* environment > config file > default.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.json")
	if err := os.WriteFile(file, []byte(`{"listen": "127.0.0.1:1", "data-dir": "/from/file", "poll-interval": "3s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HERALD_CONFIG", file)
	t.Setenv("HERALD_DATA_DIR", "/from/env")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	listen := fs.String("listen", "default", "")
	dir := fs.String("data-dir", "default", "")
	poll := fs.Duration("poll-interval", time.Second, "")
	admin := fs.String("admin-key", "default", "")
	if err := parseFlags(fs, []string{"--listen", "127.0.0.1:9"}, nil); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:9" || *dir != "/from/env" || *poll != 3*time.Second || *admin != "default" {
		t.Fatalf("listen %s, data-dir %s, poll %s, admin %s", *listen, *dir, *poll, *admin)
	}
	if err := os.WriteFile(file, []byte(`{"no-such-flag": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := parseFlags(flag.NewFlagSet("y", flag.ContinueOnError), nil, nil); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("unknown config key: %v", err)
	}
}

// TestRemoteCommands publishes and inspects through the CLI against a real
// server.
func TestRemoteCommands(t *testing.T) {
	ctx := context.Background()
	srv, stop, err := server.Start(ctx, server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), AdminKey: testAdminKey,
		AllowedTargetCIDRs: "127.0.0.0/8", PollInterval: 20 * time.Millisecond, Synchronous: "NORMAL"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer rc.Close()

	p := &proc{base: "http://" + srv.Addr()}
	key := setupTenant(t, p, rc.URL, []string{"/a"})
	t.Setenv("HERALD_URL", p.base)
	t.Setenv("HERALD_API_KEY", key)
	t.Setenv("HERALD_TENANT", "acme")

	dataFile := filepath.Join(t.TempDir(), "order.json")
	b, _ := json.Marshal(orderData)
	if err := os.WriteFile(dataFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "events", "publish", "--type", "order.completed", "--source", "shop", "--data", "@"+dataFile)
	if err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	var pub map[string]any
	if err := json.Unmarshal([]byte(out), &pub); err != nil || pub["deliveries"].(float64) != 1 {
		t.Fatalf("publish printed %s", out)
	}
	out, err = run(t, "events", "list")
	if err != nil || !strings.Contains(out, pub["id"].(string)) {
		t.Fatalf("events list: %v %s", err, out)
	}
	out, err = run(t, "deliveries", "list", "--event", pub["id"].(string))
	if err != nil || !strings.Contains(out, `"event_id": "`+pub["id"].(string)) {
		t.Fatalf("deliveries list: %v %s", err, out)
	}
	if out, err = run(t, "events", "publish", "--type", "no.such", "--data", "{}"); err == nil || !strings.Contains(err.Error(), "type") {
		t.Fatalf("bad publish: %v %s", err, out)
	}
	// Only the connection flags come from the environment.
	t.Setenv("HERALD_LIMIT", "0")
	t.Setenv("HERALD_TYPE", "no.such")
	if out, err := run(t, "events", "list"); err != nil || !strings.Contains(out, pub["id"].(string)) {
		t.Fatalf("HERALD_TYPE / HERALD_LIMIT leaked into events list: %v %s", err, out)
	}
	t.Setenv("HERALD_API_KEY", "")
	if _, err := run(t, "events", "list"); err == nil || !strings.Contains(err.Error(), "HERALD_API_KEY") {
		t.Fatalf("missing key: %v", err)
	}
}
