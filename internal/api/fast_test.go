package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/catalog"
	"github.com/heraldhq/herald/internal/httpserver"
	"github.com/heraldhq/herald/internal/publish"
	"github.com/heraldhq/herald/internal/sqlite"
	"github.com/heraldhq/herald/internal/target"
)

// TestServePublishAnswersAsPublishEvent sends the same requests to a
// server whose publishes go through ServePublish and to one where every
// request goes through Handler, and requires the same answers — and that
// ServePublish really took the plain ones.
func TestServePublishAnswersAsPublishEvent(t *testing.T) {
	type answer struct {
		Status       int
		ContentType  string
		Replayed     string
		Body         string
		TakenByServe bool
	}
	const admin = "admin-key-0123456789abcdef"
	ids := regexp.MustCompile(`(evt|dlv)_[0-9A-Z]{26}`)
	run := func(withFast bool) []answer {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Synchronous: "NORMAL", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		cat, err := catalog.Load()
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, tenant := range []string{"acme", "other"} {
			secret, key := api.NewAPIKey(tenant, herald.SystemClock{})
			if err := st.CreateTenant(ctx, &herald.Tenant{ID: tenant, Name: tenant}, key); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, secret)
		}
		sum := sha256.Sum256([]byte(admin))
		pub := publish.New(st, cat, herald.SystemClock{}, log, func() {})
		srv := api.New(api.Config{Store: st, Catalog: cat, Publisher: pub, Guard: target.NewGuard(nil), Logger: log, AdminKeyHash: sum[:]})
		taken := false
		var fast func(*fasthttp.RequestCtx) bool
		if withFast {
			fast = func(ctx *fasthttp.RequestCtx) bool {
				taken = srv.ServePublish(ctx)
				return taken
			}
		}
		hs := httpserver.New(httpserver.Config{Handler: srv.Handler(), Fast: fast, BodyLimit: api.BodyLimit,
			ReadTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, Logger: log, Refuse: api.Refuse})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go hs.Serve(ln)
		defer hs.Shutdown(ctx)
		base := "http://" + ln.Addr().String()

		et, _ := cat.Lookup("order.completed")
		valid, _ := json.Marshal(map[string]any{"type": "order.completed", "source": "shop", "data": et.Example})
		other, _ := json.Marshal(map[string]any{"type": "order.completed", "data": et.Example, "occurred_at": "2026-11-24T10:00:00Z"})
		requests := []struct{ path, key, idem, body string }{
			{"/v1/tenants/acme/events", keys[0], "", string(valid)},
			{"/v1/tenants/acme/events", keys[0], "k1", string(valid)},
			{"/v1/tenants/acme/events", keys[0], "k1", string(valid)},                     // replayed
			{"/v1/tenants/acme/events", keys[0], "k1", string(other)},                     // reused with another body
			{"/v1/tenants/acme/events", keys[0], strings.Repeat("k", 300), string(valid)}, // key too long
			{"/v1/tenants/acme/events", keys[0], "", `{"type":"order.completed","data":{"order":{"id":5}}}`},
			{"/v1/tenants/acme/events", keys[0], "", `{"type":"no.such","data":{}}`},
			{"/v1/tenants/acme/events", keys[0], "", `{"type":"order.completed","data":[1]}`},
			{"/v1/tenants/acme/events", keys[0], "", `{"type":"order.completed","extra":1,"data":{}}`},
			{"/v1/tenants/acme/events", keys[0], "", `{"type":`},
			{"/v1/tenants/acme/events", keys[0], "", `{"type":"order.completed","data":{"note":"` + strings.Repeat("x", 300<<10) + `"}}`},
			{"/v1/tenants/other/events", keys[0], "", string(valid)}, // another tenant's path
			{"/v1/tenants/acme/events", "hk_unknown", "", string(valid)},
			{"/v1/tenants/acme/events", admin, "", string(valid)},
			{"/v1/tenants/nobody/events", admin, "", string(valid)},
			{"/v1/tenants/acme/events?x=1", keys[0], "", string(valid)},
		}
		var out []answer
		for _, rq := range requests {
			req, _ := http.NewRequest("POST", base+rq.path, strings.NewReader(rq.body))
			req.Header.Set("Authorization", "Bearer "+rq.key)
			req.Header.Set("Content-Type", "application/json")
			if rq.idem != "" {
				req.Header.Set("Idempotency-Key", rq.idem)
			}
			taken = false
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out = append(out, answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Idempotent-Replayed"),
				ids.ReplaceAllString(string(b), "ID"), taken})
		}
		return out
	}
	// The requests ServePublish takes: a tenant's key on its own path and
	// a body DecodeInput reads.
	plain := map[int]bool{0: true, 1: true, 2: true, 3: true, 5: true, 6: true, 7: true}
	fast, slow := run(true), run(false)
	for i := range fast {
		f, s := fast[i], slow[i]
		if f.TakenByServe != plain[i] {
			t.Errorf("request %d: taken by ServePublish %v, want %v (%d %s)", i, f.TakenByServe, plain[i], f.Status, f.Body)
		}
		f.TakenByServe = false
		if f != s {
			t.Errorf("request %d answered differently:\nServePublish: %+v\nHandler:      %+v", i, f, s)
		}
	}
	if fast[0].Status != http.StatusAccepted || fast[2].Replayed != "true" || fast[3].Status != http.StatusUnprocessableEntity {
		t.Errorf("unexpected answers: %+v", fast[:4])
	}
}
