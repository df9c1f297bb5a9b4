// Package sqlite implements herald.Store on an embedded SQLite database.
//
// All writes go through one connection and one goroutine that groups
// whatever writes are waiting into a single transaction (each in its own
// savepoint), so one flush of the log acknowledges many requests: that is
// how Herald stays durable (synchronous=FULL) and fast (writer.go). Reads
// use a separate pool.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/heraldhq/herald"
)

//go:embed migrations/*.sql
var migrations embed.FS

// maxBatch bounds how many waiting writes share one transaction.
const maxBatch = 512

// Store is herald.Store on SQLite.
type Store struct {
	w      *sql.DB // the single writer connection
	r      *sql.DB // readers
	ops    chan writeOp
	stop   chan struct{}
	done   chan struct{}
	lock   *os.File
	log    *slog.Logger
	closed sync.Once
	wstmts stmtCache
	rstmts stmtCache
	// config counts configuration changes; only this process writes the
	// database, so it knows every change without reading.
	config atomic.Int64
	// flushWAL says Herald flushes the write-ahead log before answering a
	// write (synchronous FULL); see writer.go.
	flushWAL bool
	walPath  string
	flushErr atomic.Pointer[error]
	// fdatasync flushes a file; tests replace it to hold or fail flushes.
	fdatasync func(path string) error
	// looseGap is looseCommitGap; tests lengthen it.
	looseGap time.Duration
}

var _ herald.Store = (*Store)(nil)

// Options tune Open.
type Options struct {
	// Synchronous is the SQLite synchronous mode; FULL (the default) makes
	// every acknowledged write survive power loss, NORMAL only a crash of
	// the process, OFF neither. With FULL the flush is Herald's own, off
	// the writer (writer.go).
	Synchronous string
	Logger      *slog.Logger
}

// Open opens (creating if needed) the database in dir, takes the directory's
// lock so no second process writes to it, applies migrations, and releases
// every lease a previous process left behind: with SQLite only one process
// ever delivers, so a lease that exists at start-up belongs to a dead one.
func Open(ctx context.Context, dir string, o Options) (*Store, error) {
	mode := strings.ToUpper(o.Synchronous)
	switch mode {
	case "":
		mode = "FULL"
	case "OFF", "NORMAL", "FULL", "EXTRA":
	default:
		return nil, fmt.Errorf("SQLite synchronous mode %q: use FULL, NORMAL or OFF", o.Synchronous)
	}
	flushWAL := mode == "FULL" || mode == "EXTRA"
	if flushWAL {
		mode = "NORMAL" // and Herald flushes the log before answering
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "herald.db")
	// temp_store(MEMORY) keeps the savepoints' sub-journals off the disk:
	// on disk they cost a write system call per changed page.
	// cache_size is 4 MiB per connection: writes land at the ends of their
	// B-trees and recent rows are what is read back, so a larger cache
	// mostly held memory (16 MiB per connection put the backlog
	// benchmark's peak within 3 MiB of its 256 MiB target). It also keeps
	// the page cache's hash table small, which every commit after a page
	// split scans whole (SQLite parks a page at the pending-byte page
	// number while it reorders pages, and the cache then assumes pages
	// that far out): 3% of a burst's CPU with 16 MiB.
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
		"&_pragma=temp_store(MEMORY)&_pragma=cache_size(-4096)" +
		"&_pragma=synchronous(" + mode + ")"
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Writes are serialised by the write loop; the second connection only
	// lets statements be prepared while a transaction is open (see stmt.go).
	w.SetMaxOpenConns(2)
	w.SetMaxIdleConns(2)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		lock.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r, ops: make(chan writeOp, maxBatch), stop: make(chan struct{}), done: make(chan struct{}), lock: lock, log: o.Logger,
		flushWAL: flushWAL, walPath: path + "-wal", fdatasync: fdatasync, looseGap: looseCommitGap}
	if err := s.migrate(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if _, err := w.ExecContext(ctx, releaseAutoSQL); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("release leases: %w", err)
	}
	// A manual attempt that was cut off never reported; it ends as failed
	// so a person can retry it again.
	if _, err := w.ExecContext(ctx, releaseManualSQL); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("release leases: %w", err)
	}
	go s.writeLoop()
	return s, nil
}

// The leases found at start, through the indexes that hold them (an
// automatic lease is only ever on a pending delivery; see migration 7 and
// TestIndexedQueries).
const (
	releaseAutoSQL = `UPDATE deliveries INDEXED BY deliveries_pending SET lease_until = NULL
		WHERE status = 'pending' AND lease_until IS NOT NULL AND manual = 0`
	releaseManualSQL = `UPDATE deliveries INDEXED BY deliveries_manual SET lease_until = NULL, status = 'failed',
		last_error = 'interrupted by a restart; retry by hand' WHERE manual = 1 AND lease_until IS NOT NULL`
)

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "herald.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another Herald process (embedded SQLite allows one; use PostgreSQL to run several): %w", dir, err)
	}
	return f, nil
}

// migrator applies Herald's migrations to db.
func migrator(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

func (s *Store) migrate(ctx context.Context) error {
	p, err := migrator(s.w)
	if err != nil {
		return err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range res {
		s.log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path)
	}
	return nil
}

// Close stops the writer after the writes already queued and closes the
// database.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		<-s.done
		err = s.closeDBs()
	})
	return err
}

func (s *Store) closeDBs() error {
	s.wstmts.close()
	s.rstmts.close()
	err := errors.Join(s.r.Close(), s.w.Close())
	s.lock.Close()
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", herald.ErrUnavailable, err)
	}
	return nil
}

// write runs fn in the shared write transaction and waits for the commit
// and the flush that makes it durable. Once queued, fn runs and commits
// whatever the caller's context does, so the answer always matches what is
// stored.
func (s *Store) write(ctx context.Context, fn func(tx *wtx) error) error {
	return s.queue(ctx, writeOp{fn: fn})
}

// writeLoose is write for what only the delivery loop relies on: it is
// answered at commit, without waiting for the flush, and fn is bare
// (writer.go).
func (s *Store) writeLoose(ctx context.Context, fn func(tx *wtx) error) error {
	return s.queue(ctx, writeOp{fn: fn, loose: true, bare: true})
}

// queue queues op and waits for its answer.
func (s *Store) queue(ctx context.Context, op writeOp) error {
	if op.done == nil {
		op.done = make(chan error, 1)
	}
	select {
	case s.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return fmt.Errorf("%w: store closed", herald.ErrUnavailable)
	}
	return <-op.done
}

// configWrite is write for configuration: once committed, the config
// version moves, so caches keyed by it reload.
func (s *Store) configWrite(ctx context.Context, fn func(tx *wtx) error) error {
	err := s.write(ctx, fn)
	if err == nil {
		s.config.Add(1)
	}
	return err
}

// ConfigVersion changes after every configuration change.
func (s *Store) ConfigVersion(context.Context) (int64, error) { return s.config.Load(), nil }

// SetSettingIfAbsent stores a setting unless one exists.
func (s *Store) SetSettingIfAbsent(ctx context.Context, name, value string) (string, error) {
	var out string
	err := s.write(ctx, func(tx *wtx) error {
		if _, err := tx.Exec(`INSERT INTO settings(name, value) VALUES (?, ?) ON CONFLICT(name) DO NOTHING`, name, value); err != nil {
			return err
		}
		return tx.QueryRow(`SELECT value FROM settings WHERE name = ?`, name).Scan(&out)
	})
	return out, err
}

// Time columns hold Unix nanoseconds.
func ts(t time.Time) int64 { return t.UnixNano() }

func fromTS(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullTS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func fromNullTS(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromTS(n.Int64)
	return &t
}

func limit(p herald.Page) int {
	if p.Limit <= 0 {
		return 50
	}
	return p.Limit
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// notFound maps sql.ErrNoRows to herald.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return herald.ErrNotFound
	}
	return err
}
