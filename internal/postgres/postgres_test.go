package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/postgres"
	"github.com/heraldhq/herald/internal/storetest"
	"github.com/heraldhq/herald/internal/testenv"
)

func open(t *testing.T) herald.Store {
	s, err := postgres.Open(context.Background(), testenv.PostgresDB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open, false)
}

// TestConfigVersionSharedReadsAreFresh: one process's config version reads
// are shared by concurrent callers, yet a caller never gets a version
// older than a change another process committed before it asked, however
// many reads are in flight meanwhile.
func TestConfigVersionSharedReadsAreFresh(t *testing.T) {
	ctx := context.Background()
	db := testenv.PostgresDB(t)
	a, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Keep b's reads in flight all the time.
	stop := make(chan struct{})
	var load sync.WaitGroup
	for range 8 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := b.ConfigVersion(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() { close(stop); load.Wait() }()

	for i := range 30 {
		now := time.Now().UTC()
		id := fmt.Sprintf("t%d", i)
		key := &herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: id, Prefix: "hk_" + id, Hash: []byte(id), CreatedAt: now}
		if err := a.CreateTenant(ctx, &herald.Tenant{ID: id, Name: "T", CreatedAt: now}, key); err != nil {
			t.Fatal(err)
		}
		want, err := a.ConfigVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v, err := b.ConfigVersion(ctx); err != nil || v < want {
					t.Errorf("after a change another process committed, read version %d (err %v), want at least %d", v, err, want)
				}
			}()
		}
		wg.Wait()
	}
}

// TestCloseSendsAskedNotifications: the notification of deliveries
// released just before the store closes (a graceful stop) still reaches
// the other processes.
func TestCloseSendsAskedNotifications(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	db := testenv.PostgresDB(t)
	listener, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	woken := make(chan struct{}, 10)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		listener.Listen(ctx, func() { woken <- struct{}{} })
	}()
	defer func() {
		cancel() // Listen gives its connection back, then the pool can close
		<-listening
		listener.Close()
	}()
	<-woken // listening

	s, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseDeliveries(ctx, []string{"dlv_none"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	select {
	case <-woken:
	case <-time.After(5 * time.Second):
		t.Fatal("the notification asked for before Close was never sent")
	}
}

// TestOpenWarnsWithoutAutovacuum: Open warns exactly when the server does
// not vacuum by itself (this project's CI server runs with autovacuum off;
// PostgreSQL's default is on).
func TestOpenWarnsWithoutAutovacuum(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresDB(t)
	var logged strings.Builder
	s, err := postgres.Open(ctx, url, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	autovacuum := testenv.Setting(t, url, "autovacuum")
	warned := strings.Contains(logged.String(), "autovacuum is off")
	if warned != (autovacuum == "off") {
		t.Errorf("autovacuum %s, warned %v; log:\n%s", autovacuum, warned, logged.String())
	}
}
