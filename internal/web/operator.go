package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/heraldhq/herald"
)

// The operator's pages: tenants and their API keys. Access is the API's to
// decide, so a tenant's session that opens /operator/tenants sees the
// API's 403 rather than a rule of the dashboard's own.
func (s *Server) routesOperator(mux *http.ServeMux) {
	mux.Handle("GET /operator/tenants", s.authed(s.tenantsPage))
	mux.Handle("POST /operator/tenants", s.authed(s.createTenant))
	mux.Handle("GET /operator/tenants/{tenant}", s.authed(s.tenantPage))
	mux.Handle("POST /operator/tenants/{tenant}/api-keys", s.authed(s.createKey))
	mux.Handle("POST /operator/tenants/{tenant}/api-keys/{id}/revoke", s.authed(s.revokeKey))
}

// tenantsData is the tenants page: one page of tenants and the create form.
type tenantsData struct {
	Tenants []herald.Tenant
	// Next is the cursor of the following page, Cursor the current one.
	Next, Cursor string
	// Form keeps what the operator typed when the API refused it.
	Form struct{ ID, Name string }
	// Created and NewKey are the tenant just created and its first key,
	// shown once: the API keeps only the key's hash.
	Created *herald.Tenant
	NewKey  string
}

func (s *Server) tenantsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	var d tenantsData
	if err := s.loadTenants(r, sess, &d); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.renderTenants(w, r, sess, http.StatusOK, &d, nil)
}

func (s *Server) loadTenants(r *http.Request, sess *session, d *tenantsData) error {
	d.Cursor = r.URL.Query().Get("cursor")
	q := url.Values{"limit": {"50"}}
	if d.Cursor != "" {
		q.Set("cursor", d.Cursor)
	}
	var lst list[herald.Tenant]
	if err := s.call(r, sess, http.MethodGet, "/v1/tenants?"+q.Encode(), nil, &lst); err != nil {
		return err
	}
	d.Tenants = lst.Data
	if lst.NextCursor != nil {
		d.Next = *lst.NextCursor
	}
	return nil
}

func (s *Server) renderTenants(w http.ResponseWriter, r *http.Request, sess *session, status int, d *tenantsData, p *page) {
	if p == nil {
		p = &page{}
	}
	p.Title, p.Nav, p.Session, p.Data = "Tenants", "tenants", sess, d
	s.render(w, r, status, "tenants", p)
}

// createTenant answers with the list page itself rather than a redirect:
// the new key must be shown exactly once and must never travel in a URL
// (history, logs, Referer).
func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, sess *session) {
	var d tenantsData
	d.Form.ID = strings.TrimSpace(r.PostFormValue("id"))
	d.Form.Name = strings.TrimSpace(r.PostFormValue("name"))
	in := map[string]string{"name": d.Form.Name}
	if d.Form.ID != "" {
		in["id"] = d.Form.ID // left out, the API generates one
	}
	var created struct {
		herald.Tenant
		APIKey string `json:"api_key"`
	}
	err := s.call(r, sess, http.MethodPost, "/v1/tenants", in, &created)
	if err != nil && !formProblem(err) {
		s.fail(w, r, sess, err)
		return
	}
	if lerr := s.loadTenants(r, sess, &d); lerr != nil {
		s.fail(w, r, sess, lerr)
		return
	}
	if err != nil {
		msg, fields := fieldErrors(err)
		s.renderTenants(w, r, sess, http.StatusUnprocessableEntity, &d, &page{Error: msg, Fields: fields})
		return
	}
	d.Created, d.NewKey = &created.Tenant, created.APIKey
	d.Form.ID, d.Form.Name = "", ""
	s.renderTenants(w, r, sess, http.StatusCreated, &d, &page{Flash: "Tenant " + created.ID + " created."})
}

// tenantData is one tenant's page: details and keys.
type tenantData struct {
	Tenant herald.Tenant
	Keys   []herald.APIKey
	// NewKey is a key just created, shown once.
	NewKey       string
	NewKeyPrefix string
}

func (s *Server) tenantPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.showTenant(w, r, sess, http.StatusOK, &tenantData{}, "")
}

func (s *Server) showTenant(w http.ResponseWriter, r *http.Request, sess *session, status int, d *tenantData, flash string) {
	base := tenantAPI(r.PathValue("tenant"))
	if err := s.call(r, sess, http.MethodGet, base, nil, &d.Tenant); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	var keys list[herald.APIKey]
	if err := s.call(r, sess, http.MethodGet, base+"/api-keys", nil, &keys); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	d.Keys = keys.Data
	s.render(w, r, status, "tenant", &page{
		Title: "Tenant " + d.Tenant.Name, Nav: "tenants", Session: sess,
		TenantID: d.Tenant.ID, Flash: flash, Data: d,
	})
}

// createKey, like createTenant, renders the page with the secret instead
// of redirecting, so the secret is shown once and never put in a URL.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, sess *session) {
	var created struct {
		herald.APIKey
		Secret string `json:"api_key"`
	}
	path := tenantAPI(r.PathValue("tenant")) + "/api-keys"
	if err := s.call(r, sess, http.MethodPost, path, nil, &created); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	d := &tenantData{NewKey: created.Secret, NewKeyPrefix: created.Prefix}
	s.showTenant(w, r, sess, http.StatusCreated, d, "API key created.")
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, sess *session) {
	t := r.PathValue("tenant")
	path := tenantAPI(t) + "/api-keys/" + url.PathEscape(r.PathValue("id"))
	if err := s.call(r, sess, http.MethodDelete, path, nil, nil); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	done(w, r, "/operator/tenants/"+url.PathEscape(t), "API key revoked; it stops working at once.")
}
