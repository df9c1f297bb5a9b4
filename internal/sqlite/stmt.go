package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"
)

// Parsing SQL took an eighth of Herald's CPU under load, so statements are
// prepared once per connection and kept: the queries are constants (lists
// of ids go in as one JSON array), so the caches stay small.

// wtx is the shared write transaction. Its statements come from the
// writer's cache, bound to the transaction once per transaction (binding
// allocates and locks; a transaction runs the same few statements for
// each of its operations).
type wtx struct {
	tx       *sql.Tx
	s        *Store
	bound    map[string]*sql.Stmt
	gathered *gathered // publishes' rows not yet inserted (rows.go)
}

// stmt returns q prepared on the writer. The writer pool has a second
// connection so that preparing works while the transaction holds the
// first; database/sql then prepares it once more on the transaction's
// connection and keeps both.
func (t *wtx) stmt(q string) *sql.Stmt {
	if st, ok := t.bound[q]; ok {
		return st
	}
	st, err := t.s.wstmts.get(t.s.w, q)
	if err != nil {
		// Prepared on the transaction alone; the error, if any, surfaces
		// when it runs.
		st, _ = t.tx.Prepare(q)
		if st == nil {
			return nil
		}
		return st
	}
	st = t.tx.Stmt(st)
	if t.bound == nil {
		t.bound = map[string]*sql.Stmt{}
	}
	t.bound[q] = st
	return st
}

// Prepare returns q ready to run many times in the transaction; it closes
// with the transaction.
func (t *wtx) Prepare(q string) (*sql.Stmt, error) {
	if st := t.stmt(q); st != nil {
		return st, nil
	}
	return t.tx.Prepare(q)
}

// Exec runs a write in the transaction.
func (t *wtx) Exec(q string, args ...any) (sql.Result, error) {
	st := t.stmt(q)
	if st == nil {
		return t.tx.Exec(q, args...)
	}
	return st.Exec(args...)
}

// Query reads in the transaction.
func (t *wtx) Query(q string, args ...any) (*sql.Rows, error) {
	st := t.stmt(q)
	if st == nil {
		return t.tx.Query(q, args...)
	}
	return st.Query(args...)
}

// QueryRow reads one row in the transaction.
func (t *wtx) QueryRow(q string, args ...any) *sql.Row {
	st := t.stmt(q)
	if st == nil {
		return t.tx.QueryRow(q, args...)
	}
	return st.QueryRow(args...)
}

// stmtCache keeps one prepared statement per query text.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) get(db *sql.DB, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st, nil
	}
	st, err := db.Prepare(q)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// query reads through the readers' statement cache.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.rstmts.get(s.r, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow reads one row through the readers' statement cache.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.rstmts.get(s.r, q)
	if err != nil {
		return s.r.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// idList encodes ids as one JSON array parameter, read in SQL with
// "IN (SELECT value FROM json_each(?))", so the statement text stays the
// same for any number of ids.
func idList[T any](ids []T) string {
	b, _ := json.Marshal(ids)
	return string(b)
}
