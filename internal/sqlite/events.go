package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/heraldhq/herald"
)

// Publish writes events and their deliveries in one transaction.
func (s *Store) Publish(ctx context.Context, pubs []herald.Publication) ([]herald.PublishResult, error) {
	op, results := publishOp(pubs)
	if err := s.queue(ctx, op); err != nil {
		return nil, err
	}
	return results, nil
}

// publishOp is the write of Publish, and the results it fills.
func publishOp(pubs []herald.Publication) (writeOp, []herald.PublishResult) {
	results := make([]herald.PublishResult, len(pubs))
	// One event fails only when the database does; a batch may refuse a
	// reused idempotency key after writing the events before it. One
	// event without a key reads nothing, so its rows may wait to be
	// inserted with other publishes' (rows.go).
	bare := len(pubs) == 1
	gather := bare && pubs[0].Event.IdempotencyKey == ""
	return writeOp{bare: bare, gather: gather, done: make(chan error, 1), fn: func(tx *wtx) error {
		for i := range pubs {
			r, err := publishOne(tx, &pubs[i], gather)
			if err != nil {
				return err
			}
			if r.KeyMismatch && len(pubs) > 1 {
				return herald.Invalid(fmt.Sprintf("events[%d].idempotency_key", i),
					"was used before with a different body; send the original body or use a new key")
			}
			results[i] = r
		}
		return nil
	}}, results
}

// publishOne writes p; with gather, its rows may wait in tx to be
// inserted with others.
func publishOne(tx *wtx, p *herald.Publication, gather bool) (herald.PublishResult, error) {
	e := &p.Event
	if e.IdempotencyKey != "" {
		var hash []byte
		var r herald.PublishResult
		var suppressed, created int64
		err := tx.QueryRow(`SELECT request_hash, event_id, deliveries, suppressed, created_at FROM idempotency_keys WHERE tenant_id = ? AND key = ?`,
			e.TenantID, e.IdempotencyKey).Scan(&hash, &r.EventID, &r.Deliveries, &suppressed, &created)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return r, err
		case fromTS(created).Add(p.IdempotencyTTL).After(e.CreatedAt):
			if !bytes.Equal(hash, p.RequestHash) {
				return herald.PublishResult{KeyMismatch: true, EventID: r.EventID}, nil
			}
			r.Suppressed, r.Replayed = suppressed == 1, true
			return r, nil
		default: // expired: the key may be used afresh
			if _, err := tx.Exec(`DELETE FROM idempotency_keys WHERE tenant_id = ? AND key = ?`, e.TenantID, e.IdempotencyKey); err != nil {
				return r, err
			}
		}
	}
	g := tx.gather()
	created := ts(e.CreatedAt)
	g.events.args = append(g.events.args, e.ID, e.TenantID, e.Type, e.Source, ts(e.OccurredAt), []byte(e.Data), e.IdempotencyKey, created)
	r := herald.PublishResult{EventID: e.ID, Suppressed: p.Suppressed}
	if !p.Suppressed {
		manual := 0
		var lease, next any = nil, created
		if p.LeaseUntil != nil {
			manual, lease, next = 1, ts(*p.LeaseUntil), nil
		}
		r.DeliveryIDs = make([]string, len(p.ChannelIDs))
		for i, ch := range p.ChannelIDs {
			id := herald.NewID(herald.PrefixDelivery, e.CreatedAt)
			lease := lease
			if p.HandedOff != nil && p.HandedOff[i] {
				// Due as any other, so a restart (which clears leases)
				// sends it; leased meanwhile, so no claim does.
				lease = ts(p.HandoffLease)
			}
			g.deliveries.args = append(g.deliveries.args, id, e.TenantID, e.ID, e.Type, ch, manual, next, lease, created, created)
			r.DeliveryIDs[i] = id
		}
		r.Deliveries = len(p.ChannelIDs)
	}
	if !gather || g.count() >= maxGathered {
		if err := tx.insertGathered(); err != nil {
			return r, err
		}
	}
	if e.IdempotencyKey != "" {
		if _, err := tx.Exec(`INSERT INTO idempotency_keys(tenant_id, key, request_hash, event_id, deliveries, suppressed, created_at) VALUES (?,?,?,?,?,?,?)`,
			e.TenantID, e.IdempotencyKey, p.RequestHash, e.ID, r.Deliveries, b2i(r.Suppressed), created); err != nil {
			return r, err
		}
	}
	return r, nil
}

const eventCols = `id, tenant_id, type, source, occurred_at, data, idempotency_key, created_at`

// eventRow is an event's columns (eventCols) as scanned.
type eventRow struct {
	e                 herald.Event
	occurred, created int64
}

// dest appends the row's scan destinations to to.
func (r *eventRow) dest(to []any) []any {
	e := &r.e
	return append(to, &e.ID, &e.TenantID, &e.Type, &e.Source, &r.occurred, &e.Data, &e.IdempotencyKey, &r.created)
}

func (r *eventRow) event() *herald.Event {
	r.e.OccurredAt, r.e.CreatedAt = fromTS(r.occurred), fromTS(r.created)
	return &r.e
}

func scanEvent(sc scanner) (*herald.Event, error) {
	var r eventRow
	if err := sc.Scan(r.dest(nil)...); err != nil {
		return nil, err
	}
	return r.event(), nil
}

// GetEvent finds an event.
func (s *Store) GetEvent(ctx context.Context, tenantID, id string) (*herald.Event, error) {
	e, err := scanEvent(s.queryRow(ctx, `SELECT `+eventCols+` FROM events WHERE tenant_id = ? AND id = ?`, tenantID, id))
	return e, notFound(err)
}

// ListEvents lists events, newest first.
func (s *Store) ListEvents(ctx context.Context, tenantID string, f herald.EventFilter, p herald.Page) ([]herald.Event, error) {
	q := newQuery(`SELECT `+eventCols+` FROM events WHERE tenant_id = ?`, tenantID)
	if f.Type != "" {
		q.and(`type = ?`, f.Type)
	}
	if f.Source != "" {
		q.and(`source = ?`, f.Source)
	}
	if !f.Since.IsZero() {
		q.and(`created_at >= ?`, ts(f.Since))
	}
	if !f.Until.IsZero() {
		q.and(`created_at < ?`, ts(f.Until))
	}
	q.page(p)
	return list(ctx, s, q, scanEvent)
}
