// Package web serves Herald's dashboard at /: server-rendered pages where
// merchants configure their notifications and operators look after
// tenants. Every page reads and writes through the REST API, called in
// process with the signed-in key, so the dashboard can do exactly what the
// key may do and shows the API's own answers to bad input.
package web

import (
	"crypto/aes"
	"crypto/cipher"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/heraldhq/herald"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config wires the dashboard to the API.
type Config struct {
	// API is the REST API's handler; pages call it with the session's key.
	API http.Handler
	// SessionKey (32 bytes) seals session cookies. Every process of one
	// deployment must use the same key; Herald keeps it in the database.
	SessionKey []byte
	Clock      herald.Clock
	Logger     *slog.Logger
}

// Server holds the dashboard's handlers.
type Server struct {
	cfg   Config
	aead  cipher.AEAD
	pages map[string]*template.Template
}

// New returns the dashboard.
func New(cfg Config) (*Server, error) {
	if cfg.Clock == nil {
		cfg.Clock = herald.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	block, err := aes.NewCipher(cfg.SessionKey)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, aead: aead, pages: pages}, nil
}

// Handler returns the dashboard's routes. Paths it does not know are
// answered 404 with a page, so mount it at / behind the API's own paths.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(http.FileServerFS(static))))

	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("POST /signin", s.signin)
	mux.Handle("POST /signout", s.authed(s.signout))
	mux.Handle("GET /{$}", s.authed(s.home))

	s.routesNotifications(mux)
	s.routesChannels(mux)
	s.routesDeliveries(mux)
	s.routesEvents(mux)
	s.routesCatalog(mux)
	s.routesOperator(mux)

	mux.Handle("/", s.authed(func(w http.ResponseWriter, r *http.Request, sess *session) {
		s.notFound(w, r, sess, "There is no page at "+r.URL.Path+".")
	}))
	return s.recoverer(securityHeaders(mux))
}

// home sends a tenant to its notifications and the operator to tenants.
func (s *Server) home(w http.ResponseWriter, r *http.Request, sess *session) {
	if sess.Operator {
		http.Redirect(w, r, "/operator/tenants", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/t/"+sess.Tenant+"/notifications", http.StatusSeeOther)
}

func staticHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// securityHeaders keeps pages out of frames and scripts to our own.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Logger.Error("dashboard panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				http.Error(w, "Herald could not show this page; the error is in its log.", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}
