package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/schema"
)

// NewAPIKey returns a fresh key secret and its stored form.
func NewAPIKey(tenantID string, clock herald.Clock) (string, *herald.APIKey) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := "hk_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	now := clock.Now()
	return secret, &herald.APIKey{
		ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: tenantID, Prefix: secret[:10], Hash: sum[:], CreatedAt: now,
	}
}

type tenantCreated struct {
	herald.Tenant
	APIKey string `json:"api_key"`
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, p principal) {
	if !requireAdmin(w, p) {
		return
	}
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	verr := &herald.ValidationError{}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 200 {
		verr.Add("name", "is required: 1 to 200 characters naming the merchant")
	}
	now := s.Clock.Now()
	if in.ID == "" {
		in.ID = herald.NewID(herald.PrefixTenant, now)
		in.ID = strings.ToLower(in.ID)
	} else if !herald.ValidTenantID(in.ID) {
		verr.Add("id", "must be 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit; or leave it out to get a generated one")
	}
	if err := verr.Err(); err != nil {
		s.fail(w, r, err)
		return
	}
	t := herald.Tenant{ID: in.ID, Name: in.Name, CreatedAt: now}
	secret, key := NewAPIKey(t.ID, s.Clock)
	if err := s.Store.CreateTenant(r.Context(), &t, key); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, tenantCreated{Tenant: t, APIKey: secret})
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p principal) {
	if !requireAdmin(w, p) {
		return
	}
	pg, ok := page(w, r)
	if !ok {
		return
	}
	answerList(s, w, r, pg, func(pg herald.Page) ([]herald.Tenant, error) { return s.Store.ListTenants(r.Context(), pg) },
		func(t herald.Tenant) string { return t.ID })
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	t, err := s.Store.GetTenant(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

type keyCreated struct {
	herald.APIKey
	Secret string `json:"api_key"`
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	secret, key := NewAPIKey(tid, s.Clock)
	if err := s.Store.CreateAPIKey(r.Context(), key); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, keyCreated{APIKey: *key, Secret: secret})
}

func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	keys, err := s.Store.ListAPIKeys(r.Context(), tid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(keys, len(keys)+1, func(k herald.APIKey) string { return k.ID }))
}

func (s *Server) revokeAPIKey(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	if err := s.Store.RevokeAPIKey(r.Context(), tid, r.PathValue("id"), s.Clock.Now()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listCatalog(w http.ResponseWriter, r *http.Request, p principal) {
	writeJSON(w, http.StatusOK, list[herald.EventType]{Data: s.Catalog.All()})
}

// tenantEventType is an event type as a tenant sees it.
type tenantEventType struct {
	herald.EventType
	Enabled bool `json:"enabled"`
}

// tenantTypes lists built-in and custom types with the tenant's toggles.
func (s *Server) tenantTypes(r *http.Request, tid string) ([]tenantEventType, error) {
	custom, err := s.Store.ListEventTypes(r.Context(), tid)
	if err != nil {
		return nil, err
	}
	disabled, err := s.Store.DisabledEventTypes(r.Context(), tid)
	if err != nil {
		return nil, err
	}
	off := map[string]bool{}
	for _, n := range disabled {
		off[n] = true
	}
	all := slices.Concat(s.Catalog.All(), custom)
	out := make([]tenantEventType, len(all))
	for i, et := range all {
		out[i] = tenantEventType{EventType: et, Enabled: !off[et.Name]}
	}
	return out, nil
}

func (s *Server) listEventTypes(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	types, err := s.tenantTypes(r, tid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[tenantEventType]{Data: types})
}

func (s *Server) findTenantType(w http.ResponseWriter, r *http.Request, tid string) (*tenantEventType, bool) {
	types, err := s.tenantTypes(r, tid)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	name := r.PathValue("type")
	for i := range types {
		if types[i].Name == name {
			return &types[i], true
		}
	}
	problem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no event type %q; GET /v1/tenants/%s/event-types lists them", name, tid), nil)
	return nil, false
}

func (s *Server) getEventType(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	if et, ok := s.findTenantType(w, r, tid); ok {
		writeJSON(w, http.StatusOK, et)
	}
}

func (s *Server) patchEventType(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	var in struct {
		Enabled *bool `json:"enabled"`
	}
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	if in.Enabled == nil {
		s.fail(w, r, herald.Invalid("enabled", "is required: true turns the event type on, false turns it off"))
		return
	}
	et, ok := s.findTenantType(w, r, tid)
	if !ok {
		return
	}
	if err := s.Store.SetEventTypeEnabled(r.Context(), tid, et.Name, *in.Enabled); err != nil {
		s.fail(w, r, err)
		return
	}
	et.Enabled = *in.Enabled
	writeJSON(w, http.StatusOK, et)
}

func (s *Server) createEventType(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	var in struct {
		Name        string          `json:"name"`
		Title       string          `json:"title"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Example     json.RawMessage `json:"example"`
	}
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	verr := &herald.ValidationError{}
	if !herald.ValidEventTypeName(in.Name) {
		verr.Add("name", "must be a `group.action` name of a-z, 0-9 and _, such as \"invoice.paid\"")
	} else if _, builtin := s.Catalog.Lookup(in.Name); builtin {
		verr.Add("name", "%q is a built-in event type; choose another name", in.Name)
	}
	if in.Title == "" {
		in.Title = in.Name
	}
	if len(in.Title) > 200 {
		verr.Add("title", "must be at most 200 characters")
	}
	if len(in.Description) > 2000 {
		verr.Add("description", "must be at most 2000 characters")
	}
	if isNull(in.Schema) {
		in.Schema = nil
	}
	if isNull(in.Example) {
		in.Example = nil
	}
	if in.Schema != nil {
		v, err := schema.Compile(in.Schema)
		if err != nil {
			verr.Add("schema", "%v", err)
		} else if in.Example != nil {
			for _, fe := range v.Validate(in.Example) {
				verr.Add("example"+strings.TrimPrefix(fe.Field, "data"), "does not match the schema: %s", fe.Detail)
			}
		}
	}
	if in.Example != nil && !strings.HasPrefix(strings.TrimSpace(string(in.Example)), "{") {
		verr.Add("example", "must be a JSON object: an example of the event's data")
	}
	if err := verr.Err(); err != nil {
		s.fail(w, r, err)
		return
	}
	et := herald.EventType{Name: in.Name, Group: herald.GroupOf(in.Name), Title: in.Title, Description: in.Description,
		Schema: in.Schema, Example: in.Example, Origins: []string{herald.OriginCustom}}
	if err := s.Store.CreateEventType(r.Context(), tid, &et); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, tenantEventType{EventType: et, Enabled: true})
}

func isNull(b json.RawMessage) bool {
	t := strings.TrimSpace(string(b))
	return t == "" || t == "null"
}
