// Package server wires Herald together: store, publisher, dispatcher and
// API on one listener. `herald serve` and the end-to-end tests both use it,
// so the tests run exactly what users run.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/catalog"
	"github.com/heraldhq/herald/internal/channel"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpserver"
	"github.com/heraldhq/herald/internal/postgres"
	"github.com/heraldhq/herald/internal/publish"
	"github.com/heraldhq/herald/internal/sqlite"
	"github.com/heraldhq/herald/internal/target"
	"github.com/heraldhq/herald/internal/web"
)

// Version is Herald's version, set at build time.
var Version = "dev"

// Config is everything `herald serve` can be told.
type Config struct {
	Listen string
	// Database is a postgres:// URL; empty means embedded SQLite in DataDir.
	Database string
	// Role is what this process does: "all" (default), "api" (answers the
	// API, delivers nothing automatically) or "worker" (delivers; serves only
	// /healthz and /readyz). Split roles need PostgreSQL.
	Role               string
	DataDir            string
	AdminKey           string
	AllowedTargetCIDRs string
	// PollInterval is how often the dispatcher looks for due retries.
	PollInterval time.Duration
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
	// Synchronous is SQLite's synchronous mode (FULL by default).
	Synchronous string
	// LeaseSlack is added to a channel's timeout to make a delivery's lease:
	// how long after a crash its in-flight deliveries wait before another
	// process may take them.
	LeaseSlack time.Duration
	// Clock replaces the wall clock in tests.
	Clock herald.Clock
	// DeliveryGate, when set, holds automatic delivery back until it is
	// closed (the benchmark builds a backlog this way).
	DeliveryGate <-chan struct{}
	// Notice receives messages for the operator that are shown once (a
	// generated operator key).
	Notice io.Writer
}

// Server is a running Herald.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    herald.Store
	disp     *dispatch.Dispatcher
	sender   *channel.Sender
	http     *httpserver.Server
	listener net.Listener
}

// settingAdminKeyHash keeps the hash of a generated operator key, so a key
// printed on first start keeps working after restarts.
const settingAdminKeyHash = "admin_key_sha256"

// settingSessionKey keeps the key that seals dashboard session cookies.
const settingSessionKey = "dashboard_session_key"

// Open prepares a server and binds its listener; Run serves.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.Clock == nil {
		cfg.Clock = herald.SystemClock{}
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if cfg.Notice == nil {
		cfg.Notice = io.Discard
	}
	allowed, err := target.ParseCIDRs(cfg.AllowedTargetCIDRs)
	if err != nil {
		return nil, fmt.Errorf("--allowed-target-cidrs: %w", err)
	}
	cat, err := catalog.Load()
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	switch cfg.Role {
	case "":
		cfg.Role = RoleAll
	case RoleAll, RoleAPI, RoleWorker:
	default:
		return nil, fmt.Errorf("--role %q: use all, api or worker", cfg.Role)
	}
	if cfg.Role != RoleAll && cfg.Database == "" {
		return nil, fmt.Errorf("--role %s needs PostgreSQL (--database postgres://…): with embedded SQLite one process does everything", cfg.Role)
	}
	store, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	adminHash, err := adminKeyHash(ctx, store, cfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	guard := target.NewGuard(allowed)
	sender := channel.NewSender(guard, "Herald/"+Version)
	disp := dispatch.New(dispatch.Config{
		Store: store, Sender: sender, Clock: cfg.Clock, Logger: log,
		PollInterval: cfg.PollInterval, ShutdownGrace: cfg.ShutdownTimeout * 2 / 3, LeaseSlack: cfg.LeaseSlack,
		// Embedded SQLite has one process: it hands new deliveries
		// straight to the dispatcher.
		Local: cfg.Database == "", Channels: store,
	})
	pub := publish.New(store, cat, cfg.Clock, log, disp.Wake)
	if cfg.Database == "" {
		pub.SetHandoff(disp)
	}
	apiSrv := api.New(api.Config{
		Store: store, Catalog: cat, Publisher: pub, Dispatcher: disp, Guard: guard, Clock: cfg.Clock, Logger: log,
		AdminKeyHash: adminHash, OpenAPI: api.OpenAPIDocument(),
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	handler := apiSrv.Handler()
	fast := apiSrv.ServePublish
	if cfg.Role == RoleWorker {
		handler, fast = healthOnly(handler), nil
	} else {
		handler, err = withDashboard(ctx, store, handler, cfg.Clock, log)
		if err != nil {
			ln.Close()
			store.Close()
			return nil, err
		}
	}
	return &Server{
		cfg: cfg, log: log, store: store, disp: disp, sender: sender, listener: ln,
		http: httpserver.New(httpserver.Config{
			Handler:     handler,
			Fast:        fast,
			BodyLimit:   api.BodyLimit,
			ReadTimeout: 60 * time.Second,
			IdleTimeout: 120 * time.Second,
			Logger:      log,
			Refuse:      api.Refuse,
		}),
	}, nil
}

// Process roles.
const (
	RoleAll    = "all"
	RoleAPI    = "api"
	RoleWorker = "worker"
)

// OpenStore opens the store cfg names: PostgreSQL for a postgres:// URL,
// embedded SQLite in cfg.DataDir otherwise.
func OpenStore(ctx context.Context, cfg Config, log *slog.Logger) (herald.Store, error) {
	switch {
	case cfg.Database == "":
		return sqlite.Open(ctx, cfg.DataDir, sqlite.Options{Synchronous: cfg.Synchronous, Logger: log})
	case strings.HasPrefix(cfg.Database, "postgres://"), strings.HasPrefix(cfg.Database, "postgresql://"):
		return postgres.Open(ctx, cfg.Database, log)
	default:
		return nil, errors.New("--database must be a postgres:// URL (leave it empty for embedded SQLite in --data-dir)")
	}
}

// healthOnly serves a worker's health routes and nothing else.
func healthOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			http.Error(w, "this Herald process has --role worker; send API requests to an api or all process", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// withDashboard serves the dashboard at / and the API at its own paths.
// The key that seals dashboard sessions is kept in the database, so every
// process of a deployment shares it and sessions survive restarts.
func withDashboard(ctx context.Context, store herald.Store, apiHandler http.Handler, clock herald.Clock, log *slog.Logger) (http.Handler, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	stored, err := store.SetSettingIfAbsent(ctx, settingSessionKey, hex.EncodeToString(b))
	if err != nil {
		return nil, fmt.Errorf("store dashboard session key: %w", err)
	}
	key, err := hex.DecodeString(stored)
	if err != nil {
		return nil, fmt.Errorf("dashboard session key in the database: %w", err)
	}
	dash, err := web.New(web.Config{API: apiHandler, SessionKey: key, Clock: clock, Logger: log})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", dash.Handler())
	for _, p := range []string{"/v1/", "/healthz", "/readyz", "/openapi.yaml"} {
		mux.Handle(p, apiHandler)
	}
	return mux, nil
}

// adminKeyHash decides the operator key: the configured one, else the one
// generated on an earlier start, else a new one, printed once.
func adminKeyHash(ctx context.Context, store herald.Store, cfg Config) ([]byte, error) {
	if cfg.AdminKey != "" {
		if len(cfg.AdminKey) < 16 {
			return nil, errors.New("--admin-key must be at least 16 characters; use a long random string")
		}
		sum := sha256.Sum256([]byte(cfg.AdminKey))
		return sum[:], nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	key := "hk_admin_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	stored, err := store.SetSettingIfAbsent(ctx, settingAdminKeyHash, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, fmt.Errorf("store operator key: %w", err)
	}
	if stored == hex.EncodeToString(sum[:]) {
		fmt.Fprintf(cfg.Notice, "\nNo operator key was configured, so Herald generated one. It is shown only this once:\n\n    %s\n\n"+
			"Keep it safe; set HERALD_ADMIN_KEY (or --admin-key) to use a key of your own instead.\n\n", key)
	}
	return hex.DecodeString(stored)
}

// Start opens a server and runs it in the background, for tests and the
// benchmark; stop ends it gracefully (once) and returns Run's error.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (srv *Server, stop func() error, err error) {
	srv, err = Open(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	var once sync.Once
	var runErr error
	return srv, func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Run serves until ctx ends, then stops gracefully: the listener closes,
// requests in progress finish, in-flight deliveries finish or are released,
// and the store closes after its last write.
func (s *Server) Run(ctx context.Context) error {
	dctx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if s.cfg.Role != RoleAPI {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.cfg.DeliveryGate != nil {
				select {
				case <-s.cfg.DeliveryGate:
				case <-dctx.Done():
					return
				}
			}
			s.disp.Run(dctx)
		}()
		// With PostgreSQL, other processes' publishes wake this one.
		if l, ok := s.store.(interface{ Listen(context.Context, func()) }); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.Listen(dctx, s.disp.Wake)
			}()
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	attrs := []any{"addr", s.Addr(), "role", s.cfg.Role, "store", s.storeName(), "version", Version}
	if s.cfg.Role != RoleWorker {
		attrs = append(attrs, "dashboard", "http://"+s.Addr()+"/")
	}
	s.log.Info("herald serving", attrs...)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.log.Info("shutting down")
	// The API drains and the dispatcher finishes its requests at the same
	// time, so a stop takes at most the shutdown timeout.
	stopDispatch()
	shCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(shCtx); err != nil {
		s.log.Warn("http shutdown", "err", err)
	}
	wg.Wait()
	s.sender.Close()
	if err := s.store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	if serveErr != nil {
		return serveErr
	}
	return nil
}

func (s *Server) storeName() string {
	if s.cfg.Database != "" {
		return "postgres"
	}
	return "sqlite:" + s.cfg.DataDir
}

// Wake makes the dispatcher look for due deliveries now (tests move a fake
// clock and then wake it).
func (s *Server) Wake() { s.disp.Wake() }

// DispatchStats counts how the dispatcher came by what it sent.
func (s *Server) DispatchStats() dispatch.Stats { return s.disp.Stats() }
