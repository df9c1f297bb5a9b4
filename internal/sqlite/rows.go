package sqlite

import "strings"

// Rows are gathered and inserted several to a statement: a multi-row
// INSERT costs about a quarter less per row than a statement per row
// (docs/ARCHITECTURE.md). A batch of results inserts its attempts so, and
// consecutive single-event publishes share statements for their events
// and deliveries: their rows are gathered in the write transaction, and
// written before any other operation runs and before the commit
// (writer.go), so every read in the transaction sees them and a failed
// insert fails the whole transaction.

// rowSizes are the statement sizes, in rows, that gathered rows are
// written in, largest first: few prepared statements, few statements.
var rowSizes = [...]int{64, 16, 4, 1}

// rowInsert is one table's multi-row INSERT statements.
type rowInsert struct {
	cols int                   // values per row
	sql  [len(rowSizes)]string // one statement per size in rowSizes
}

// newRowInsert builds the statements inserting rows of values into
// head ("INSERT INTO t(a, b) VALUES "): row is one row's values, "(?,?)".
func newRowInsert(head, row string) *rowInsert {
	ri := &rowInsert{cols: strings.Count(row, "?")}
	for i, n := range rowSizes {
		ri.sql[i] = head + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
	}
	return ri
}

var (
	eventRows = newRowInsert(`INSERT INTO events(id, tenant_id, type, source, occurred_at, data, idempotency_key, created_at) VALUES `,
		`(?,?,?,?,?,?,?,?)`)
	attemptRows = newRowInsert(`INSERT INTO attempts(id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body, error_class, error, trigger) VALUES `,
		`(?,?,?,?,?,?,?,?,?,?,?)`)
	deliveryRows = newRowInsert(`INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, manual, next_attempt_at, lease_until, created_at, updated_at) VALUES `,
		`(?,?,?,?,?,'pending',?,?,?,?,?)`)
)

// rowBatch is the gathered rows of one table.
type rowBatch struct {
	ins  *rowInsert
	args []any
}

// insert writes the gathered rows; they are gone from r whether it
// succeeds or not.
func (r *rowBatch) insert(tx *wtx) error {
	args := r.args
	defer r.reset()
	for len(args) > 0 {
		n := len(args) / r.ins.cols
		i := 0
		for rowSizes[i] > n {
			i++
		}
		k := rowSizes[i] * r.ins.cols
		if _, err := tx.Exec(r.ins.sql[i], args[:k]...); err != nil {
			return err
		}
		args = args[k:]
	}
	return nil
}

// reset drops the gathered rows.
func (r *rowBatch) reset() {
	clear(r.args) // let the rows' data go
	r.args = r.args[:0]
}

// gathered is what the transaction holds of publishes' rows.
type gathered struct {
	events, deliveries rowBatch
}

// maxGathered is how many rows, of both tables, may wait before being
// written.
const maxGathered = 128

// count is how many rows are gathered.
func (g *gathered) count() int {
	return len(g.events.args)/g.events.ins.cols + len(g.deliveries.args)/g.deliveries.ins.cols
}

func (t *wtx) gather() *gathered {
	if t.gathered == nil {
		t.gathered = &gathered{events: rowBatch{ins: eventRows}, deliveries: rowBatch{ins: deliveryRows}}
	}
	return t.gathered
}

// insertGathered writes the gathered rows, events first; none are left
// gathered, whether it succeeds or not.
func (t *wtx) insertGathered() error {
	g := t.gathered
	if g == nil {
		return nil
	}
	if err := g.events.insert(t); err != nil {
		g.deliveries.reset()
		return err
	}
	return g.deliveries.insert(t)
}
