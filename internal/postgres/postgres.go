// Package postgres implements herald.Store on PostgreSQL, for running any
// number of Herald processes on one database. Claims lock due deliveries
// with FOR UPDATE SKIP LOCKED and the channels they go to, so in-flight
// limits hold across processes; leases that a dead process leaves expire.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/batch"
)

//go:embed migrations/*.sql
var migrations embed.FS

// notifyChannel is the LISTEN/NOTIFY channel that tells dispatchers new
// deliveries are due.
const notifyChannel = "herald_deliveries"

// Store is herald.Store on PostgreSQL.
type Store struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	versions versionReads
	notes    notifier
	gather   *batch.Writer[*gathered]
	// interrupted is when (by a claim's clock, in Unix nanoseconds) a
	// claim last ended interrupted manual attempts (see claim).
	interrupted atomic.Int64
}

var _ herald.Store = (*Store)(nil)

// Open connects to url, applies migrations (safe when several processes
// start at once: a session lock serialises them) and returns the store.
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	s := &Store{pool: pool, log: log}
	s.gather = newGatherer(s)
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.checkAutovacuum(ctx)
	return s, nil
}

// checkAutovacuum warns when the server does not vacuum by itself. Every
// lease and every result leaves a dead version of a delivery's row, and
// the indexes keep an entry for each until a vacuum: without one, claims
// walk ever more of them. (With autovacuum off, a backlog of a million
// drained at tens of deliveries a second.)
func (s *Store) checkAutovacuum(ctx context.Context) {
	var on string
	if err := s.pool.QueryRow(ctx, `SHOW autovacuum`).Scan(&on); err != nil || on != "off" {
		return
	}
	s.log.Warn("autovacuum is off on this PostgreSQL server; turn it on (autovacuum = on): " +
		"every delivery leaves dead row versions that only a vacuum removes, and claims slow down as they pile up")
}

// migrator is goose's provider of the embedded migrations on db, under
// its session lock.
func migrator(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// Migrate applies the embedded migrations.
func (s *Store) Migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := migrator(db)
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

// Close closes the pool.
func (s *Store) Close() error {
	// Notifications asked for before closing are sent: those of the
	// deliveries a graceful stop released wake the other processes.
	s.notes.sending.Wait()
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %v", herald.ErrUnavailable, err)
	}
	return nil
}

// Listen calls wake whenever deliveries are published or re-queued by any
// process, until ctx ends. It reconnects after losing the connection.
func (s *Store) Listen(ctx context.Context, wake func()) {
	for ctx.Err() == nil {
		if err := s.listenOnce(ctx, wake); err != nil && ctx.Err() == nil {
			s.log.Warn("listen for deliveries", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, wake func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	// Deliveries published while we were not listening are due now.
	wake()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			// The connection may be broken; don't give it back to the pool.
			_ = conn.Conn().Close(context.Background())
			return err
		}
		wake()
	}
}

// tx runs fn in a transaction and maps connection failures to
// herald.ErrUnavailable.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, fn)
	return mapErr(err)
}

// batchTx runs the statements queue puts in a batch as one transaction
// in one round trip, BEGIN and COMMIT included (tx costs a round trip
// for each). After a failed statement PostgreSQL skips the rest, COMMIT
// too, and the transaction is ended here.
func (s *Store) batchTx(ctx context.Context, queue func(b *pgx.Batch)) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	queue(b)
	b.Queue("COMMIT")
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Release()
	err = conn.SendBatch(ctx, b).Close()
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// Left in a failed transaction, the pool would close the
		// connection instead of reusing it.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return mapErr(err)
}

// mapErr maps errors that mean "the database is not reachable" to
// herald.ErrUnavailable, and no rows to herald.ErrNotFound.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return herald.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "57": // connection exception, operator intervention (shutdown)
			return fmt.Errorf("%w: %v", herald.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ve *herald.ValidationError
	var ce *herald.ConflictError
	if errors.As(err, &ve) || errors.As(err, &ce) || errors.Is(err, herald.ErrNotFound) {
		return err
	}
	if pgconn.SafeToRetry(err) || isConnErr(err) {
		return fmt.Errorf("%w: %v", herald.ErrUnavailable, err)
	}
	return err
}

func isConnErr(err error) bool {
	msg := err.Error()
	for _, s := range []string{"connect", "connection", "broken pipe", "EOF", "closed pool"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// bumpConfig moves the config version in a transaction that changes
// configuration.
const bumpConfig = `UPDATE config_version SET version = version + 1 WHERE id = 1`

// configTx is tx for configuration changes: it moves the config version
// in the same transaction.
func (s *Store) configTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, bumpConfig)
		return err
	})
}

// notifier sends the NOTIFY that wakes other processes' dispatchers
// after a commit rather than in it: a transaction that notifies holds a
// lock from its NOTIFY through its commit, flush included, so publishes
// that notified committed one at a time (about 1,400 a second, whatever
// the pool size). A NOTIFY on its own writes nothing to flush. One is in
// flight at a time; those asked for meanwhile are sent as one more.
type notifier struct {
	mu      sync.Mutex
	running bool // a goroutine is sending
	pending bool // a NOTIFY was asked for since the last one began
	sending sync.WaitGroup
}

// notify has a NOTIFY sent soon, after what the caller committed.
func (s *Store) notify() {
	n := &s.notes
	n.mu.Lock()
	n.pending = true
	if !n.running {
		n.running = true
		n.sending.Go(s.sendNotifies)
	}
	n.mu.Unlock()
}

func (s *Store) sendNotifies() {
	n := &s.notes
	for {
		n.mu.Lock()
		if !n.pending {
			n.running = false
			n.mu.Unlock()
			return
		}
		n.pending = false
		n.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, '')`, notifyChannel); err != nil {
			s.log.Warn("notify other processes of new deliveries (they find them at their next poll)", "err", err)
		}
		cancel()
	}
}

// versionReads shares config version reads among callers: each waits
// for a read that began after it asked, so it sees every change committed
// before its call, yet while requests arrive faster than a read takes,
// one query answers all that arrived during the previous one. Every API
// request and every publish asks (two reads per publish), and the
// queries were a sixth of a publish's CPU.
type versionReads struct {
	mu      sync.Mutex
	running bool         // a goroutine is reading
	next    *versionRead // the read those asking now wait for
}

type versionRead struct {
	done chan struct{}
	v    int64
	err  error
}

// ConfigVersion reads the config version (see versionReads).
func (s *Store) ConfigVersion(ctx context.Context) (int64, error) {
	vr := &s.versions
	vr.mu.Lock()
	r := vr.next
	if r == nil {
		r = &versionRead{done: make(chan struct{})}
		vr.next = r
	}
	if !vr.running {
		vr.running = true
		go s.readVersions()
	}
	vr.mu.Unlock()
	select {
	case <-r.done:
		return r.v, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// readVersions runs reads back to back while anyone waits for one.
func (s *Store) readVersions() {
	vr := &s.versions
	for {
		vr.mu.Lock()
		r := vr.next
		vr.next = nil
		if r == nil {
			vr.running = false
			vr.mu.Unlock()
			return
		}
		vr.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.pool.QueryRow(ctx, `SELECT version FROM config_version WHERE id = 1`).Scan(&r.v)
		cancel()
		r.err = mapErr(err)
		close(r.done)
	}
}

// SetSettingIfAbsent stores a setting unless one exists.
func (s *Store) SetSettingIfAbsent(ctx context.Context, name, value string) (string, error) {
	var out string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO settings(name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&out)
	})
	return out, err
}

func limit(p herald.Page) int {
	if p.Limit <= 0 {
		return 50
	}
	return p.Limit
}

// query builds a WHERE clause with numbered parameters.
type query struct {
	sql  strings.Builder
	args []any
}

func newQuery(base string, args ...any) *query {
	q := &query{args: args}
	q.sql.WriteString(base)
	return q
}

// and adds "AND cond" where cond holds one "?" for v.
func (q *query) and(cond string, v any) {
	q.args = append(q.args, v)
	q.sql.WriteString(" AND " + strings.Replace(cond, "?", fmt.Sprintf("$%d", len(q.args)), 1))
}

// page adds the cursor, order and limit.
func (q *query) page(p herald.Page) {
	if p.After != "" {
		q.and("id < ?", p.After)
	}
	q.args = append(q.args, limit(p))
	fmt.Fprintf(&q.sql, " ORDER BY id DESC LIMIT $%d", len(q.args))
}
