package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/catalog"
	"github.com/heraldhq/herald/internal/publish"
	"github.com/heraldhq/herald/internal/sqlite"
	"github.com/heraldhq/herald/internal/target"
)

// BenchmarkPublishHandler measures the CPU of one publish through the API
// handler and the publisher, with SQLite's fsync off so the disk does not
// hide it. Use it with -cpuprofile to see where a publish's time goes.
func BenchmarkPublishHandler(b *testing.B) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, b.TempDir(), sqlite.Options{Synchronous: "OFF", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cat, err := catalog.Load()
	if err != nil {
		b.Fatal(err)
	}
	secret, key := api.NewAPIKey("acme", herald.SystemClock{})
	if err := st.CreateTenant(ctx, &herald.Tenant{ID: "acme", Name: "Acme"}, key); err != nil {
		b.Fatal(err)
	}
	pub := publish.New(st, cat, herald.SystemClock{}, log, func() {})
	h := api.New(api.Config{Store: st, Catalog: cat, Publisher: pub, Guard: target.NewGuard(nil), Logger: log}).Handler()
	et, _ := cat.Lookup("order.completed")
	body, _ := json.Marshal(map[string]any{"type": "order.completed", "source": "shop", "data": et.Example})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/tenants/acme/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("publish answered %d: %s", rec.Code, rec.Body)
		}
	}
}
