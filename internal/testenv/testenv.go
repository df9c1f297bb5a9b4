// Package testenv gives tests what the machine provides (PostgreSQL, for
// now) and decides what happens when it is missing: a clear skip on a
// laptop, a failure when HERALD_TEST_STRICT=1 (CI).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Strict reports whether missing test dependencies must fail the run.
func Strict() bool { return os.Getenv("HERALD_TEST_STRICT") == "1" }

// Missing skips the test with why, or fails it in strict mode.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("HERALD_TEST_STRICT=1 and %s", why)
	}
	t.Skipf("skipped: %s (set HERALD_TEST_STRICT=1 to make this a failure)", why)
}

// DefaultPostgresURL is the machine's PostgreSQL unless
// HERALD_TEST_DATABASE_URL names another server.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the URL of the server tests create databases on.
func AdminURL() string {
	if u := os.Getenv("HERALD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// PostgresDB creates a fresh, empty database for the test, drops it when
// the test ends, and returns its URL. Without a reachable PostgreSQL the
// test is skipped (or fails in strict mode).
func PostgresDB(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := AdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Missing(t, "no PostgreSQL at "+redact(admin)+": "+err.Error())
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "herald_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Setting is the value of a setting of the server url names (SHOW name).
func Setting(t testing.TB, url, name string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW "+pgx.Identifier{name}.Sanitize()).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
