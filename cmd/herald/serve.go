package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"time"

	"github.com/heraldhq/herald/internal/server"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address the API listens on")
	fs.StringVar(&cfg.DataDir, "data-dir", "./herald-data", "directory of the embedded SQLite database")
	fs.StringVar(&cfg.Database, "database", "", "postgres:// URL to use PostgreSQL instead of embedded SQLite")
	fs.StringVar(&cfg.Role, "role", "all", "all, api (API only) or worker (delivery only); split roles need --database")
	fs.DurationVar(&cfg.LeaseSlack, "lease-slack", 30*time.Second, "added to a channel's timeout to make a delivery's lease; after a crash, in-flight deliveries are retried once it passes")
	fs.StringVar(&cfg.AdminKey, "admin-key", "", "operator key; generated and printed once when unset")
	fs.StringVar(&cfg.AllowedTargetCIDRs, "allowed-target-cidrs", "", "comma-separated CIDRs that channel URLs may reach although private or loopback, e.g. 127.0.0.0/8")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", time.Second, "how often the dispatcher looks for due retries")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful stop may take")
	fs.StringVar(&cfg.Synchronous, "sqlite-synchronous", "FULL", "SQLite synchronous mode: FULL survives power loss, NORMAL only crashes")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	if err := parseFlags(fs, args, nil); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	cfg.Notice = stdout
	s, err := server.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
