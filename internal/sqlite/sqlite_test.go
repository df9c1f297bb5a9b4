package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/sqlite"
	"github.com/heraldhq/herald/internal/storetest"
)

func open(t *testing.T) herald.Store {
	s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open, true)
}

// TestOneProcessPerDataDir: a second store on the same directory is refused
// with a message that says why and what to do.
func TestOneProcessPerDataDir(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "in use by another Herald process") {
		t.Fatalf("second open: %v", err)
	}
}
