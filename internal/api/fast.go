package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"github.com/valyala/fasthttp"

	"github.com/heraldhq/herald/internal/httpserver"
	"github.com/heraldhq/herald/internal/publish"
)

// ServePublish answers a single-event publish from fasthttp's types,
// without building a net/http request: publishing is the route that
// carries a store's load. It takes only the plain kind — a tenant's key
// on its own tenant's exact path, a body within limits that
// publish.DecodeInput reads — and reports false, having written and
// stored nothing, for every other request, which Handler then serves. The
// answers are publishEvent's own (the same functions write them), and the
// server tests run every publish through whichever path takes it.
func (s *Server) ServePublish(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsPost() {
		return false
	}
	path := ctx.RequestURI() // as sent: no query, no escapes, nothing to clean
	rest, ok := bytes.CutPrefix(path, []byte("/v1/tenants/"))
	if !ok {
		return false
	}
	tenant, ok := bytes.CutSuffix(rest, []byte("/events"))
	if !ok || len(tenant) == 0 {
		return false
	}
	key, ok := bytes.CutPrefix(ctx.Request.Header.Peek("Authorization"), []byte("Bearer "))
	key = bytes.TrimSpace(key)
	if !ok || len(key) == 0 {
		return false
	}
	sum := sha256.Sum256(key)
	if len(s.AdminKeyHash) == sha256.Size && subtle.ConstantTimeCompare(sum[:], s.AdminKeyHash) == 1 {
		return false // the operator's publishes check the tenant exists first
	}
	// fasthttp recycles ctx once this returns and says nothing of a client
	// that went away, so the request is not a context to hand on.
	rctx := context.Background()
	tid, err := s.keyTenant(rctx, sum)
	if err != nil || tid != string(tenant) { // equal to a stored id, so valid
		return false
	}
	body := ctx.PostBody()
	if len(body) > maxEventBody {
		return false
	}
	in, ok := publish.DecodeInput(body) // copies what it keeps
	if !ok || len(bytes.TrimSpace(in.Data)) > publish.MaxDataBytes {
		return false
	}
	if k := ctx.Request.Header.Peek("Idempotency-Key"); len(k) > 0 {
		if len(k) > publish.MaxIdempotencyKey {
			return false
		}
		in.IdempotencyKey = string(k)
	}
	w := httpserver.NewResponseWriter(ctx)
	s.publishOne(rctx, w, "POST", string(path), tid, in, body)
	w.Finish()
	return true
}
