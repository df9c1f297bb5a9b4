package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/server"
)

// TestAPIDetails covers small promises of the API's answers.
func TestAPIDetails(t *testing.T) {
	h := startHerald(t)
	_, key := h.tenant("acme")
	rc := newReceiver(t, nil)

	// A secret given without its prefix is kept in the whsec_ form.
	ch := h.must(201, "POST", "/v1/tenants/acme/channels", key, map[string]any{"name": "r", "url": rc.URL,
		"secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if ch["secret"] != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
		t.Errorf("secret answered as %v", ch["secret"])
	}
	chID := ch["id"].(string)
	if s := h.must(200, "GET", "/v1/tenants/acme/channels/"+chID+"/secret", key, nil)["secret"]; s != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
		t.Errorf("stored secret %v", s)
	}

	// JSON is not HTML-escaped: a filter reads back as written.
	r := h.call("POST", "/v1/tenants/acme/subscriptions", key, map[string]any{"channel_id": chID, "event_types": []string{"order.*"},
		"filter": `data.order.id != "" && source != "admin"`})
	if r.Status != 201 || !strings.Contains(string(r.Body), `source != \"admin\"`) || strings.Contains(string(r.Body), `\u0026`) {
		t.Errorf("subscription answered %s", r)
	}

	// A rate so small its slot interval would overflow is refused.
	if r := h.call("PATCH", "/v1/tenants/acme/channels/"+chID, key, map[string]any{"rate_limit_per_sec": 0.0001}); r.Status != 422 ||
		!strings.Contains(string(r.Body), `"field":"rate_limit_per_sec"`) {
		t.Errorf("tiny rate limit: %s", r)
	}

	// A batch whose every item is a replay answers 200 and says so.
	item := map[string]any{"type": "order.completed", "data": h.example("order.completed"), "idempotency_key": "b-1"}
	h.must(202, "POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": []any{item}})
	again := h.call("POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": []any{item}})
	if again.Status != 200 || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replayed batch: %d %v", again.Status, again.Header)
	}
}

// TestSplitRoleNeedsPostgres: a split role on SQLite is refused before
// anything is created in the data directory.
func TestSplitRoleNeedsPostgres(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, err := server.Open(context.Background(), server.Config{Listen: "127.0.0.1:0", DataDir: dir, AdminKey: adminKey, Role: server.RoleWorker},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "needs PostgreSQL") {
		t.Fatalf("worker on SQLite: %v", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Fatalf("the data directory was created: %v", statErr)
	}
}
