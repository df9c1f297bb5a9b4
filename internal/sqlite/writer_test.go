package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// setting reads a setting through the reader pool: what is committed,
// whether or not its writers have been answered.
func setting(t *testing.T, s *Store, name string) string {
	t.Helper()
	var v string
	err := s.r.QueryRow(`SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if err != nil {
		return ""
	}
	return v
}

func answered(ch <-chan error) bool {
	select {
	case err := <-ch:
		if err != nil {
			panic(err)
		}
		return true
	case <-time.After(100 * time.Millisecond):
		return false
	}
}

// openStore opens a store (synchronous FULL) in a new directory, closed
// when the test ends.
func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// claimAsync claims in the background; the channel gets the claim's error.
func claimAsync(s *Store) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := s.ClaimDeliveries(context.Background(), herald.ClaimParams{Now: time.Now(), Limit: 10, LeaseSlack: time.Second})
		ch <- err
	}()
	return ch
}

// setAsync writes a setting, a durable write, in the background.
func setAsync(s *Store, name string) <-chan error {
	ch := make(chan error, 1)
	go func() { _, err := s.SetSettingIfAbsent(context.Background(), name, "v"); ch <- err }()
	return ch
}

// heldFlushes opens a store (synchronous FULL) whose every flush waits
// for a value on hold and is counted.
func heldFlushes(t *testing.T) (*Store, chan struct{}, *atomic.Int32) {
	s := openStore(t)
	hold := make(chan struct{})
	flushes := new(atomic.Int32)
	s.fdatasync = func(path string) error {
		flushes.Add(1)
		<-hold
		return fdatasync(path)
	}
	return s, hold, flushes
}

// TestWriteAnsweredAfterFlush: with synchronous FULL a write is answered
// only once the log is flushed, and the writes that arrive during one flush
// commit together and share the next.
func TestWriteAnsweredAfterFlush(t *testing.T) {
	s, hold, flushes := heldFlushes(t)
	set := func(name string) <-chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := s.SetSettingIfAbsent(context.Background(), name, "v")
			ch <- err
		}()
		return ch
	}

	a := set("a")
	deadline := time.Now().Add(5 * time.Second)
	for setting(t, s, "a") == "" && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if setting(t, s, "a") == "" {
		t.Fatal("a was never committed")
	}
	if answered(a) {
		t.Fatal("a was answered before its flush ended")
	}
	b, c := set("b"), set("c")
	time.Sleep(50 * time.Millisecond)
	if setting(t, s, "b") != "" || setting(t, s, "c") != "" {
		t.Fatal("b or c committed while a's flush was still running; they should gather in the open transaction")
	}
	hold <- struct{}{} // a's flush ends
	if !answered(a) {
		t.Fatal("a not answered after its flush")
	}
	if answered(b) || answered(c) {
		t.Fatal("b or c answered before their own flush")
	}
	if setting(t, s, "b") == "" || setting(t, s, "c") == "" {
		t.Fatal("b and c not committed once a's flush ended")
	}
	hold <- struct{}{} // b and c's flush ends
	if !answered(b) || !answered(c) {
		t.Fatal("b or c not answered after their flush")
	}
	if n := flushes.Load(); n != 2 {
		t.Fatalf("%d flushes for a, then b and c together; want 2", n)
	}
	close(hold)
}

// TestFailedFlushRefusesWrites: after a failed flush the store answers
// every write with ErrUnavailable, because a later flush that succeeds
// says nothing about the pages the kernel could not write.
func TestFailedFlushRefusesWrites(t *testing.T) {
	s := openStore(t)
	s.fdatasync = func(string) error { return errors.New("EIO") }
	if _, err := s.SetSettingIfAbsent(context.Background(), "a", "v"); !errors.Is(err, herald.ErrUnavailable) {
		t.Fatalf("write with a failing flush: %v, want ErrUnavailable", err)
	}
	s.fdatasync = fdatasync
	if _, err := s.SetSettingIfAbsent(context.Background(), "b", "v"); !errors.Is(err, herald.ErrUnavailable) {
		t.Fatalf("write after a failed flush: %v, want ErrUnavailable", err)
	}
	if setting(t, s, "b") != "" {
		t.Fatal("a write refused after a failed flush was stored anyway")
	}
}

// TestNormalDoesNotFlush: synchronous NORMAL leaves flushing to SQLite's
// checkpoints, as documented for --sqlite-synchronous.
func TestNormalDoesNotFlush(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.fdatasync = func(string) error { t.Error("flushed with synchronous NORMAL"); return nil }
	if _, err := s.SetSettingIfAbsent(context.Background(), "a", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), t.TempDir(), Options{Synchronous: "sometimes"}); err == nil {
		t.Fatal("an unknown synchronous mode was accepted")
	}
}

// TestLooseWritesNotHeldByFlush: a claim is answered at its commit, not
// after the flush of the durable write it shares a transaction with, and a
// transaction of claims alone is not flushed at all.
func TestLooseWritesNotHeldByFlush(t *testing.T) {
	s, hold, flushes := heldFlushes(t)
	claim := func() <-chan error { return claimAsync(s) }
	set := func(name string) <-chan error { return setAsync(s, name) }
	if !answered(claim()) {
		t.Fatal("a claim alone was not answered at once")
	}
	if n := flushes.Load(); n != 0 {
		t.Fatalf("%d flushes for a transaction of one claim, want none", n)
	}

	a := set("a")
	for flushes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// b and the claim gather while a's flush runs, then commit together.
	b, c := set("b"), claim()
	time.Sleep(50 * time.Millisecond)
	hold <- struct{}{} // a's flush ends
	if !answered(a) {
		t.Fatal("a not answered after its flush")
	}
	if !answered(c) {
		t.Fatal("the claim waited for the flush of b, which shares its transaction")
	}
	if answered(b) {
		t.Fatal("b was answered before its flush")
	}
	hold <- struct{}{}
	if !answered(b) {
		t.Fatal("b not answered after its flush")
	}
	if n := flushes.Load(); n != 2 {
		t.Fatalf("%d flushes, want 2 (a; then b with the claim)", n)
	}
	close(hold)
}

// TestFailedWriteUndone: a failing write leaves nothing behind. One in a
// savepoint fails alone; a bare one takes its whole transaction with it,
// and the writes that shared it are told to retry.
func TestFailedWriteUndone(t *testing.T) {
	for _, bare := range []bool{false, true} {
		s, hold, flushes := heldFlushes(t)
		insert := func(name string, fail error, bare bool) writeOp {
			return writeOp{done: make(chan error, 1), bare: bare, fn: func(tx *wtx) error {
				if _, err := tx.Exec(`INSERT INTO settings(name, value) VALUES (?, 'v')`, name); err != nil {
					return err
				}
				return fail
			}}
		}
		ctx := context.Background()
		a := make(chan error, 1)
		go func() { _, err := s.SetSettingIfAbsent(ctx, "a", "v"); a <- err }()
		for flushes.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		// While a's flush is held, b, the failing write and c gather in one
		// transaction.
		boom := errors.New("boom")
		b, bad, c := insert("b", nil, false), insert("bad", boom, bare), insert("c", nil, false)
		for _, op := range []writeOp{b, bad, c} {
			s.ops <- op
		}
		if err := <-bad.done; !errors.Is(err, boom) {
			t.Fatalf("bare=%v: the failing write answered %v", bare, err)
		}
		if bare {
			if err := <-b.done; !errors.Is(err, herald.ErrUnavailable) {
				t.Fatalf("b shared a transaction with a failed bare write and answered %v, want ErrUnavailable", err)
			}
		}
		hold <- struct{}{} // a's flush
		if err := <-a; err != nil {
			t.Fatal(err)
		}
		hold <- struct{}{} // the next transaction's flush
		if err := <-c.done; err != nil {
			t.Fatalf("bare=%v: c, queued after the failure, answered %v", bare, err)
		}
		if !bare {
			if err := <-b.done; err != nil {
				t.Fatalf("b answered %v; a failed write in a savepoint fails alone", err)
			}
		}
		close(hold)
		want := map[string]bool{"a": true, "b": !bare, "bad": false, "c": true}
		for name, stored := range want {
			if got := setting(t, s, name) != ""; got != stored {
				t.Errorf("bare=%v: setting %s stored=%v, want %v", bare, name, got, stored)
			}
		}
	}
}

// Every connection keeps a 4 MiB page cache (see Open): the backlog
// benchmark's memory target depends on it.
func TestPageCacheSize(t *testing.T) {
	s := openStore(t)
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var kib int
		if err := db.QueryRow(`PRAGMA cache_size`).Scan(&kib); err != nil {
			t.Fatal(err)
		}
		if kib != -4096 {
			t.Errorf("%s connection: cache_size %d, want -4096 (4 MiB)", name, kib)
		}
	}
}

// TestGatheredPublishes: single-event publishes without a key leave
// their rows gathered in the transaction (rows.go). What runs after them
// in the transaction reads them; a gathered row that fails to insert
// fails every write of its transaction, and none of its rows is stored.
func TestGatheredPublishes(t *testing.T) {
	s, hold, flushes := heldFlushes(t)
	ctx := context.Background()
	now := time.Now()
	go func() { hold <- struct{}{} }() // the tenant's flush
	if err := s.CreateTenant(ctx, &herald.Tenant{ID: "acme", Name: "Acme", CreatedAt: now},
		&herald.APIKey{ID: "key_1", TenantID: "acme", Prefix: "p", Hash: []byte("h"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	publish := func(id string) writeOp {
		op, _ := publishOp([]herald.Publication{{
			Event:      herald.Event{ID: id, TenantID: "acme", Type: "order.completed", Source: "shop", OccurredAt: now, Data: []byte(`{}`), CreatedAt: now},
			ChannelIDs: []string{"ch_1", "ch_2"},
		}})
		if !op.gather {
			t.Fatal("a single publish without a key is not gathered")
		}
		return op
	}
	// Each part starts with a write held in its flush, so the writes
	// after it share the next transaction.
	held := func(id string, flush int32) writeOp {
		op := publish(id)
		s.ops <- op
		for flushes.Load() < flush {
			time.Sleep(time.Millisecond)
		}
		return op
	}

	a := held("evt_a", 2)
	var events, deliveries int
	count := writeOp{done: make(chan error, 1), fn: func(tx *wtx) error {
		if err := tx.QueryRow(`SELECT count(*) FROM events WHERE id LIKE 'evt_b%'`).Scan(&events); err != nil {
			return err
		}
		return tx.QueryRow(`SELECT count(*) FROM deliveries WHERE event_id LIKE 'evt_b%'`).Scan(&deliveries)
	}}
	ops := []writeOp{publish("evt_b1"), publish("evt_b2"), publish("evt_b3"), count}
	for _, op := range ops {
		s.ops <- op
	}
	hold <- struct{}{} // a's flush
	hold <- struct{}{} // the next transaction's
	for _, op := range append(ops, a) {
		if err := <-op.done; err != nil {
			t.Fatal(err)
		}
	}
	if events != 3 || deliveries != 6 {
		t.Fatalf("a write after three gathered publishes read %d events and %d deliveries, want 3 and 6", events, deliveries)
	}

	// evt_c gathers with a publish reusing evt_a's id, which cannot be
	// inserted: both are refused and neither is stored.
	d := held("evt_d", 4)
	c, dup := publish("evt_c"), publish("evt_a")
	s.ops <- c
	s.ops <- dup
	hold <- struct{}{} // d's flush
	if err := <-d.done; err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]writeOp{"evt_c": c, "the reused id": dup} {
		if err := <-op.done; !errors.Is(err, herald.ErrUnavailable) {
			t.Errorf("%s, gathered with a row that failed, answered %v; want ErrUnavailable", name, err)
		}
	}
	close(hold)
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM deliveries WHERE event_id = 'evt_c'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, "acme", "evt_c"); n != 0 || err == nil {
		t.Fatalf("evt_c stored (%d deliveries) though its transaction failed", n)
	}
}

// TestLooseWritesGathered: a transaction of loose writes alone commits no
// sooner than the gap after the previous commit, gathering what arrives
// meanwhile; a durable write commits at once, with what was gathered.
func TestLooseWritesGathered(t *testing.T) {
	s := openStore(t)
	s.looseGap = 300 * time.Millisecond // before any write reaches the writer
	if !answered(claimAsync(s)) {
		t.Fatal("a claim with no commit before it waited")
	}
	c := claimAsync(s)
	if answered(c) {
		t.Fatal("a claim committed within the gap after the previous commit")
	}
	if !answered(setAsync(s, "a")) {
		t.Fatal("a durable write waited for the gap")
	}
	if !answered(c) {
		t.Fatal("the gathered claim was not committed with the durable write")
	}
	start := time.Now()
	if err := <-claimAsync(s); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("a claim alone committed %v after the previous commit, within the gap", d)
	}
}
