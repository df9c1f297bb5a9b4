package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/heraldhq/herald"
)

// query builds a list query: a base with its tenant condition, optional
// filters, then the page.
type query struct {
	sql  strings.Builder
	args []any
}

func newQuery(base string, args ...any) *query {
	q := &query{args: args}
	q.sql.WriteString(base)
	return q
}

// and adds "AND cond", where cond holds one ? for v.
func (q *query) and(cond string, v any) {
	q.sql.WriteString(" AND " + cond)
	q.args = append(q.args, v)
}

// page adds the cursor, newest-first order and limit.
func (q *query) page(p herald.Page) {
	if p.After != "" {
		q.and("id < ?", p.After)
	}
	q.sql.WriteString(" ORDER BY id DESC LIMIT ?")
	q.args = append(q.args, limit(p))
}

// list runs a query on the readers and scans every row.
func list[T any](ctx context.Context, s *Store, q *query, scan func(scanner) (*T, error)) ([]T, error) {
	rows, err := s.query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scan)
}

// collect scans every row and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (*T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}
