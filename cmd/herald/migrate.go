package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/heraldhq/herald/internal/server"
)

// migrate applies the migrations of the configured store and exits.
// serve does the same at start; this lets operators do it ahead of a
// rollout. With PostgreSQL a lock makes concurrent runs safe.
func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	fs.StringVar(&cfg.DataDir, "data-dir", "./herald-data", "directory of the embedded SQLite database")
	fs.StringVar(&cfg.Database, "database", "", "postgres:// URL to migrate instead of embedded SQLite")
	if err := parseFlags(fs, args, nil); err != nil {
		return err
	}
	log, _ := newLogger(stderr, "info", "text")
	st, err := server.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	where := cfg.DataDir
	if cfg.Database != "" {
		where = "PostgreSQL"
	}
	fmt.Fprintln(stdout, "database is up to date:", where)
	return st.Close()
}
