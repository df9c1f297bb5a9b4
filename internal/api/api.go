// Package api serves Herald's REST API under /v1: JSON in and out, errors
// as application/problem+json (RFC 9457) naming each bad field and its fix.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/catalog"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/publish"
	"github.com/heraldhq/herald/internal/target"
)

// Config wires the API to the rest of Herald.
type Config struct {
	Store      herald.Store
	Catalog    *catalog.Catalog
	Publisher  *publish.Publisher
	Dispatcher *dispatch.Dispatcher
	Guard      *target.Guard
	Clock      herald.Clock
	Logger     *slog.Logger
	// AdminKeyHash is the SHA-256 of the operator key, which manages tenants
	// and may act on any; empty means no operator key.
	AdminKeyHash []byte
	// OpenAPI is the document served at /openapi.yaml.
	OpenAPI []byte
}

// Server holds the API's handlers.
type Server struct {
	Config

	keysMu      sync.Mutex
	keys        map[[32]byte]string // key hash -> tenant, as of keysVersion
	keysVersion int64
}

// New returns the API server.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = herald.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{Config: cfg}
}

// Handler returns the API's routes behind panic recovery.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(s.OpenAPI)
	})

	a := s.authed
	mux.Handle("GET /v1/whoami", a(s.whoami))
	mux.Handle("GET /v1/event-types", a(s.listCatalog))
	mux.Handle("POST /v1/tenants", a(s.createTenant))
	mux.Handle("GET /v1/tenants", a(s.listTenants))
	mux.Handle("GET /v1/tenants/{tenant}", a(s.getTenant))
	mux.Handle("POST /v1/tenants/{tenant}/api-keys", a(s.createAPIKey))
	mux.Handle("GET /v1/tenants/{tenant}/api-keys", a(s.listAPIKeys))
	mux.Handle("DELETE /v1/tenants/{tenant}/api-keys/{id}", a(s.revokeAPIKey))

	mux.Handle("GET /v1/tenants/{tenant}/event-types", a(s.listEventTypes))
	mux.Handle("POST /v1/tenants/{tenant}/event-types", a(s.createEventType))
	mux.Handle("GET /v1/tenants/{tenant}/event-types/{type}", a(s.getEventType))
	mux.Handle("PATCH /v1/tenants/{tenant}/event-types/{type}", a(s.patchEventType))

	mux.Handle("POST /v1/tenants/{tenant}/channels", a(s.createChannel))
	mux.Handle("GET /v1/tenants/{tenant}/channels", a(s.listChannels))
	mux.Handle("GET /v1/tenants/{tenant}/channels/{id}", a(s.getChannel))
	mux.Handle("PATCH /v1/tenants/{tenant}/channels/{id}", a(s.patchChannel))
	mux.Handle("DELETE /v1/tenants/{tenant}/channels/{id}", a(s.deleteChannel))
	mux.Handle("GET /v1/tenants/{tenant}/channels/{id}/secret", a(s.getSecret))
	mux.Handle("POST /v1/tenants/{tenant}/channels/{id}/rotate-secret", a(s.rotateSecret))
	mux.Handle("POST /v1/tenants/{tenant}/channels/{id}/test", a(s.testChannel))
	mux.Handle("POST /v1/tenants/{tenant}/channels/{id}/recover", a(s.recoverChannel))

	mux.Handle("POST /v1/tenants/{tenant}/subscriptions", a(s.createSubscription))
	mux.Handle("GET /v1/tenants/{tenant}/subscriptions", a(s.listSubscriptions))
	mux.Handle("GET /v1/tenants/{tenant}/subscriptions/{id}", a(s.getSubscription))
	mux.Handle("PATCH /v1/tenants/{tenant}/subscriptions/{id}", a(s.patchSubscription))
	mux.Handle("DELETE /v1/tenants/{tenant}/subscriptions/{id}", a(s.deleteSubscription))

	mux.Handle("POST /v1/tenants/{tenant}/hooks", a(s.createHook))
	mux.Handle("GET /v1/tenants/{tenant}/hooks", a(s.listHooks))
	mux.Handle("DELETE /v1/tenants/{tenant}/hooks/{id}", a(s.deleteHook))
	mux.Handle("GET /v1/tenants/{tenant}/hooks/samples/{event_type}", a(s.hookSamples))

	mux.Handle("POST /v1/tenants/{tenant}/events", a(s.publishEvent))
	mux.Handle("POST /v1/tenants/{tenant}/events/batch", a(s.publishBatch))
	mux.Handle("GET /v1/tenants/{tenant}/events", a(s.listEvents))
	mux.Handle("GET /v1/tenants/{tenant}/events/{id}", a(s.getEvent))

	mux.Handle("GET /v1/tenants/{tenant}/deliveries", a(s.listDeliveries))
	mux.Handle("GET /v1/tenants/{tenant}/deliveries/{id}", a(s.getDelivery))
	mux.Handle("POST /v1/tenants/{tenant}/deliveries/{id}/retry", a(s.retryDelivery))

	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no API route %s %s; see /openapi.yaml for the routes", r.Method, r.URL.Path), nil)
	})
	return s.recoverer(mux)
}

// whoami says whose key the request carries: the operator's, or a
// tenant's and which tenant (what a sign-in needs to know).
func (s *Server) whoami(w http.ResponseWriter, r *http.Request, p principal) {
	writeJSON(w, http.StatusOK, map[string]any{"operator": p.admin, "tenant_id": p.tenantID})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		problem(w, http.StatusServiceUnavailable, "Not ready", "the database does not answer: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Logger.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				problem(w, http.StatusInternalServerError, "Internal error", "the server failed; the error was logged", nil)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// principal is who a request acts as.
type principal struct {
	admin    bool
	tenantID string
}

type handler func(w http.ResponseWriter, r *http.Request, p principal)

// authed checks the Bearer key: the operator key, or a tenant's key.
func (s *Server) authed(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			problem(w, http.StatusUnauthorized, "Unauthorized", "send an API key as 'Authorization: Bearer <key>'", nil)
			return
		}
		sum := sha256.Sum256([]byte(key))
		if len(s.AdminKeyHash) == sha256.Size && subtle.ConstantTimeCompare(sum[:], s.AdminKeyHash) == 1 {
			h(w, r, principal{admin: true})
			return
		}
		tenantID, err := s.keyTenant(r.Context(), sum)
		if errors.Is(err, herald.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
			problem(w, http.StatusUnauthorized, "Unauthorized", "the API key is unknown or revoked", nil)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		h(w, r, principal{tenantID: tenantID})
	})
}

// keyTenant finds the tenant of an API key by its hash. Known keys are
// cached per config version, which every key change moves, so a revoked
// key stops working at once on every process.
func (s *Server) keyTenant(ctx context.Context, sum [32]byte) (string, error) {
	v, err := s.Store.ConfigVersion(ctx)
	if err != nil {
		return "", err
	}
	s.keysMu.Lock()
	if s.keys == nil || s.keysVersion != v || len(s.keys) > 100_000 {
		s.keys, s.keysVersion = map[[32]byte]string{}, v
	}
	tenantID, ok := s.keys[sum]
	s.keysMu.Unlock()
	if ok {
		return tenantID, nil
	}
	k, err := s.Store.APIKeyByHash(ctx, sum[:])
	if err != nil {
		return "", err // unknown keys are not cached: guessing must not fill memory
	}
	s.keysMu.Lock()
	if s.keysVersion == v {
		s.keys[sum] = k.TenantID
	}
	s.keysMu.Unlock()
	return k.TenantID, nil
}

// tenant resolves {tenant} for p: a tenant key sees only its own tenant;
// any other tenant is 404, exactly as if it did not exist.
func (s *Server) tenant(w http.ResponseWriter, r *http.Request, p principal) (string, bool) {
	id := r.PathValue("tenant")
	if !p.admin {
		if id != p.tenantID {
			problem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no tenant %q", id), nil)
			return "", false
		}
		return id, true
	}
	if _, err := s.Store.GetTenant(r.Context(), id); err != nil {
		if errors.Is(err, herald.ErrNotFound) {
			problem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no tenant %q", id), nil)
		} else {
			s.fail(w, r, err)
		}
		return "", false
	}
	return id, true
}

func requireAdmin(w http.ResponseWriter, p principal) bool {
	if !p.admin {
		problem(w, http.StatusForbidden, "Forbidden", "this route needs the operator key (HERALD_ADMIN_KEY); a tenant key cannot use it", nil)
		return false
	}
	return true
}

// problemDoc is an RFC 9457 problem with per-field errors.
type problemDoc struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors []herald.FieldError `json:"errors,omitempty"`
}

func problem(w http.ResponseWriter, status int, title, detail string, fields []herald.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = newEncoder(w).Encode(problemDoc{Type: "about:blank", Title: title, Status: status, Detail: detail, Errors: fields})
}

// Refuse answers a request refused before any route saw it.
func Refuse(w http.ResponseWriter, status int, detail string) {
	problem(w, status, http.StatusText(status), detail, nil)
}

// fail answers err with the matching problem.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.failAt(w, r.Method, r.URL.Path, err)
}

// failAt is fail for a request known by its method and path.
func (s *Server) failAt(w http.ResponseWriter, method, path string, err error) {
	var verr *herald.ValidationError
	var cerr *herald.ConflictError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &verr):
		problem(w, http.StatusUnprocessableEntity, "Invalid input", verr.Fields[0].Field+": "+verr.Fields[0].Detail, verr.Fields)
	case errors.As(err, &tooBig):
		problem(w, http.StatusRequestEntityTooLarge, "Request too large",
			fmt.Sprintf("the body is over %d bytes, this route's limit; send less (event data may be at most 256 KiB, a batch body 16 MiB: split large batches)", tooBig.Limit), nil)
	case errors.Is(err, herald.ErrNotFound):
		problem(w, http.StatusNotFound, "Not found", "no such resource in this tenant", nil)
	case errors.As(err, &cerr):
		problem(w, http.StatusConflict, "Conflict", cerr.Detail, nil)
	case errors.Is(err, herald.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.Logger.Warn("storage unavailable", "path", path, "err", err)
		w.Header().Set("Retry-After", "1")
		problem(w, http.StatusServiceUnavailable, "Unavailable", "storage is unavailable, so this was not acknowledged; try again (with the same Idempotency-Key a repeat is never stored twice)", nil)
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		s.Logger.Error("request failed", "method", method, "path", path, "err", err)
		problem(w, http.StatusInternalServerError, "Internal error", "the server failed; the error was logged", nil)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = newEncoder(w).Encode(v)
}

// newEncoder writes JSON without HTML escaping: a filter reads
// "a >= 1", not "a \u003e= 1". Responses are never HTML.
func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// Request body limits.
const (
	maxBody      = 1 << 20
	maxEventBody = 256<<10 + 16<<10 // data plus the envelope fields
	maxBatchBody = 16 << 20
)

// BodyLimit is how much of a request's body the server reads for uri
// (nil: the most for any route): a little more than the route's own limit,
// so the route answers an oversized body itself, in its own words.
func BodyLimit(uri []byte) int {
	path, _, _ := bytes.Cut(uri, []byte("?"))
	if uri == nil || bytes.HasSuffix(path, []byte("/events/batch")) {
		return maxBatchBody + 4<<10
	}
	return maxBody + 4<<10
}

// decode reads a JSON body strictly into v. It answers the request itself
// and returns false when the body is unusable.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, err)
			return false
		}
		problem(w, http.StatusBadRequest, "Unreadable body", "the request body could not be read: "+err.Error(), nil)
		return false
	}
	return decodeBytes(w, body, v)
}

func decodeBytes(w http.ResponseWriter, body []byte, v any) bool {
	if err := unmarshalStrict(body, v); err != nil {
		var fe *herald.ValidationError
		var se *shapeError
		switch {
		case errors.As(err, &fe):
			problem(w, http.StatusUnprocessableEntity, "Invalid input", fe.Fields[0].Field+": "+fe.Fields[0].Detail, fe.Fields)
		case errors.As(err, &se):
			problem(w, http.StatusUnprocessableEntity, "Invalid input", "the body "+se.Error(), nil)
		default:
			problem(w, http.StatusBadRequest, "Malformed JSON", err.Error(), nil)
		}
		return false
	}
	return true
}

// unmarshalStrict decodes one JSON value, refusing unknown fields and
// trailing data. Well-formed JSON of the wrong shape becomes a field error
// (or a *shapeError when the whole value is not an object); syntax errors
// say where they are.
func unmarshalStrict(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return errors.New("the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		return errors.New("the body holds more than one JSON value; send exactly one object")
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &shapeError{got: typ.Value}
		}
		return typeError(body, "", typ)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return herald.Invalid(name, "is not a known field; check its spelling against /openapi.yaml")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: the body ends too soon")
	}
	if ferr := timeFieldError(body, v); ferr != nil {
		return ferr
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

// list is a page of results.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// page reads limit and cursor.
func page(w http.ResponseWriter, r *http.Request) (herald.Page, bool) {
	p := herald.Page{Limit: 50}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			problem(w, http.StatusBadRequest, "Bad query", "limit must be a whole number from 1 to 500", []herald.FieldError{{Field: "limit", Detail: "must be 1 to 500"}})
			return p, false
		}
		p.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			problem(w, http.StatusBadRequest, "Bad query", "cursor is not one Herald gave; pass next_cursor from the previous page as it is", []herald.FieldError{{Field: "cursor", Detail: "is not a cursor Herald gave; pass next_cursor from the previous page unchanged"}})
			return p, false
		}
		p.After = string(b)
	}
	return p, true
}

// answerList answers one page of a list. It asks list for one item more
// than the page holds, to know whether a next page exists.
func answerList[T any](s *Server, w http.ResponseWriter, r *http.Request, pg herald.Page, list func(herald.Page) ([]T, error), id func(T) string) {
	limit := pg.Limit
	pg.Limit++
	items, err := list(pg)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(items, limit, id))
}

// found reports whether a lookup of {id} succeeded; otherwise it answers
// 404 naming what was missing, or the error.
func (s *Server) found(w http.ResponseWriter, r *http.Request, err error, what, tenantID string) bool {
	switch {
	case errors.Is(err, herald.ErrNotFound):
		problem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no %s %q in tenant %q", what, r.PathValue("id"), tenantID), nil)
		return false
	case err != nil:
		s.fail(w, r, err)
		return false
	}
	return true
}

// pageOf trims a result fetched with limit+1 and sets the cursor.
func pageOf[T any](items []T, limit int, id func(T) string) list[T] {
	out := list[T]{Data: items}
	if out.Data == nil {
		out.Data = []T{}
	}
	if len(items) > limit {
		out.Data = items[:limit]
		c := base64.RawURLEncoding.EncodeToString([]byte(id(items[limit-1])))
		out.NextCursor = &c
	}
	return out
}

// timeParam reads an RFC 3339 query parameter.
func timeParam(w http.ResponseWriter, r *http.Request, name string) (time.Time, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		problem(w, http.StatusBadRequest, "Bad query", name+" must be an RFC 3339 time such as 2026-11-24T10:00:00Z",
			[]herald.FieldError{{Field: name, Detail: "must be an RFC 3339 time"}})
		return t, false
	}
	if !timeInRange(t) {
		problem(w, http.StatusBadRequest, "Bad query", name+" "+timeRangeDetail,
			[]herald.FieldError{{Field: name, Detail: timeRangeDetail}})
		return t, false
	}
	return t, true
}
