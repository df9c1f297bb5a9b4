package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// page is what every template gets.
type page struct {
	Title string
	// Nav names the menu entry to highlight.
	Nav     string
	Session *session
	// CSRF is the token every form posts back.
	CSRF string
	// Flash is a one-line confirmation carried by a short-lived cookie
	// after a redirect (never by the URL, so a link cannot put words on a
	// real page).
	Flash string
	// Error is a message shown above the page; Fields holds the API's
	// complaints per field, for forms to show next to their inputs.
	Error  string
	Fields map[string]string
	// TenantID is the tenant the page is about, when an operator looks at
	// one; a tenant's pages default to its own.
	TenantID string
	Data     any
}

// Tenant is the tenant the page is about.
func (p *page) Tenant() string {
	if p.TenantID != "" || p.Session == nil {
		return p.TenantID
	}
	return p.Session.Tenant
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return fmt.Sprint(t)
	},
	"pretty": func(v any) string {
		var raw []byte
		switch x := v.(type) {
		case json.RawMessage:
			raw = x
		case []byte:
			raw = x
		case string:
			raw = []byte(x)
		default:
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return fmt.Sprint(v)
			}
			return string(b)
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return string(raw)
		}
		return buf.String()
	},
	"join":     strings.Join,
	"contains": func(list []string, s string) bool { return slices.Contains(list, s) },
	"query":    url.QueryEscape,
	"path":     url.PathEscape,
	"percent": func(n, total int) string {
		if total == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(total))
	},
	"truncate": func(n int, s string) string {
		if len(s) <= n {
			return s
		}
		return s[:n] + "…"
	},
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
}

// parsePages parses each page template together with the layout and the
// shared pieces.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// render writes a page; the template named name defines "content".
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t, ok := s.pages[name]
	if !ok {
		panic("no template " + name)
	}
	if kind, msg, ok := takeFlash(w, r); ok {
		if kind == "err" && p.Error == "" {
			p.Error = msg
		} else if kind == "ok" && p.Flash == "" {
			p.Flash = msg
		}
	}
	if p.Session != nil && p.CSRF == "" {
		p.CSRF = p.Session.CSRF
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		s.cfg.Logger.Error("render page", "page", name, "err", err)
		http.Error(w, "Herald could not show this page; the error is in its log.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an API error on a page of its own: 404 as "not found",
// everything else with the API's words.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	var aerr *apiError
	if errors.As(err, &aerr) {
		switch aerr.Status {
		case http.StatusNotFound:
			s.notFound(w, r, sess, aerr.Error())
			return
		case http.StatusUnauthorized:
			setCookie(w, r, sessionCookie, "", -1)
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		s.render(w, r, aerr.Status, "error", &page{Title: aerr.Title, Session: sess, Error: aerr.Error()})
		return
	}
	s.cfg.Logger.Error("dashboard", "path", r.URL.Path, "err", err)
	s.render(w, r, http.StatusInternalServerError, "error", &page{Title: "Something went wrong", Session: sess, Error: err.Error()})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, sess *session, msg string) {
	s.render(w, r, http.StatusNotFound, "error", &page{Title: "Not found", Session: sess, Error: msg})
}

// fieldErrors turns an API validation error into per-field messages and a
// summary for the form that caused it.
func fieldErrors(err error) (string, map[string]string) {
	var aerr *apiError
	if !errors.As(err, &aerr) {
		return err.Error(), nil
	}
	fields := map[string]string{}
	for _, f := range aerr.Errors {
		fields[f.Field] = f.Detail
	}
	// A form has one input for "sources" or "policy": show the complaint
	// about "sources[2]" or "policy.delays_s[0]" there too.
	for k, v := range fields {
		if i := strings.IndexAny(k, ".["); i > 0 {
			if _, taken := fields[k[:i]]; !taken {
				fields[k[:i]] = v
			}
		}
	}
	msg := aerr.Detail
	if msg == "" {
		msg = aerr.Title
	}
	if len(fields) > 0 {
		msg = "Please fix the fields marked below."
	}
	return msg, fields
}

// formProblem says whether err is the API refusing the input, which the
// form shows, rather than something the page cannot go on from.
func formProblem(err error) bool {
	switch errStatus(err) {
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// errStatus is the API's status for err, or 500 for anything else.
func errStatus(err error) int {
	var aerr *apiError
	if errors.As(err, &aerr) {
		return aerr.Status
	}
	return http.StatusInternalServerError
}

// done redirects after a successful form, with a confirmation line.
func done(w http.ResponseWriter, r *http.Request, to, msg string) {
	redirectWith(w, r, to, "ok", msg)
}

// doneBadly redirects after a form whose action ran but did not succeed
// (a retry the receiver refused), with the outcome shown as an error.
func doneBadly(w http.ResponseWriter, r *http.Request, to, msg string) {
	redirectWith(w, r, to, "err", msg)
}

const flashCookie = "herald_flash"

func redirectWith(w http.ResponseWriter, r *http.Request, to, kind, msg string) {
	setCookie(w, r, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(kind+":"+msg)), 60)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// takeFlash reads and clears the message a redirect left for this page.
func takeFlash(w http.ResponseWriter, r *http.Request) (kind, msg string, ok bool) {
	c, err := r.Cookie(flashCookie)
	if err != nil || c.Value == "" {
		return "", "", false
	}
	setCookie(w, r, flashCookie, "", -1)
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return "", "", false
	}
	kind, msg, ok = strings.Cut(string(b), ":")
	return kind, msg, ok
}

// tenantOf returns the {tenant} of the path, which a tenant's session may
// only name as its own (the API refuses the rest anyway).
func tenantOf(r *http.Request, sess *session) string {
	t := r.PathValue("tenant")
	if t == "" {
		t = sess.Tenant
	}
	return t
}
