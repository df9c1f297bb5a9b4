package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/heraldhq/herald/internal/sqlite"
)

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data-dir", "./herald-data", "directory of the embedded SQLite database")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, _ := newLogger(stderr, "info", "text")
	st, err := sqlite.Open(ctx, *dir, sqlite.Options{Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "database is up to date:", *dir)
	return st.Close()
}
