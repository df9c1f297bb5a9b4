package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald"
)

// Publish writes events and their deliveries in one transaction and
// notifies listening dispatchers when it commits.
func (s *Store) Publish(ctx context.Context, pubs []herald.Publication) ([]herald.PublishResult, error) {
	for i := range pubs {
		if pubs[i].HandedOff != nil {
			return nil, errors.New("publish: PostgreSQL does not take deliveries handed off to one process's dispatcher; every process claims them from the database")
		}
	}
	results, deliveries, err := s.publish(ctx, pubs)
	if err == nil && deliveries > 0 {
		s.notify()
	}
	return results, err
}

// publish writes pubs and counts the new deliveries.
func (s *Store) publish(ctx context.Context, pubs []herald.Publication) ([]herald.PublishResult, int, error) {
	if !slices.ContainsFunc(pubs, func(p herald.Publication) bool { return p.Event.IdempotencyKey != "" }) {
		return s.publishGathered(ctx, pubs)
	}
	for try := 0; ; try++ {
		results := make([]herald.PublishResult, len(pubs))
		deliveries := 0
		err := s.tx(ctx, func(tx pgx.Tx) error {
			deliveries = 0
			for i := range pubs {
				r, err := publishOne(ctx, tx, &pubs[i])
				if err != nil {
					return err
				}
				if r.KeyMismatch && len(pubs) > 1 {
					return herald.Invalid(fmt.Sprintf("events[%d].idempotency_key", i),
						"was used before with a different body; send the original body or use a new key")
				}
				if !r.Replayed {
					deliveries += r.Deliveries
				}
				results[i] = r
			}
			return nil
		})
		// Two requests with one new idempotency key raced; the loser sees
		// the winner's answer on the second try.
		if try == 0 && isKeyRace(err) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return results, deliveries, nil
	}
}

func isKeyRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.TableName == "idempotency_keys"
}

// publishBatch writes publications without idempotency keys, which need
// nothing read first, in one round trip: a batch runs as one implicit
// transaction, so it is written whole or not at all. A transaction of
// its own (BEGIN, each insert, the notification, COMMIT) took six round
// trips per event.
func (s *Store) publishBatch(ctx context.Context, pubs []herald.Publication) ([]herald.PublishResult, int, error) {
	b := &pgx.Batch{}
	results, deliveries := queuePublications(b, pubs)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, mapErr(err)
	}
	return results, deliveries, nil
}

// queuePublications queues the writes of pubs and returns their results
// and how many deliveries they make.
func queuePublications(b *pgx.Batch, pubs []herald.Publication) ([]herald.PublishResult, int) {
	results := make([]herald.PublishResult, len(pubs))
	deliveries := 0
	for i := range pubs {
		results[i] = queuePublication(b, &pubs[i])
		deliveries += results[i].Deliveries
	}
	return results, deliveries
}

// queuePublication queues the writes of p's event and deliveries, and
// returns their result.
func queuePublication(b *pgx.Batch, p *herald.Publication) herald.PublishResult {
	e := &p.Event
	b.Queue(insertEvent, e.ID, e.TenantID, e.Type, e.Source, e.OccurredAt, []byte(e.Data), e.IdempotencyKey, e.CreatedAt)
	r := herald.PublishResult{EventID: e.ID, Suppressed: p.Suppressed}
	if !p.Suppressed && len(p.ChannelIDs) > 0 {
		manual := p.LeaseUntil != nil
		next := &e.CreatedAt
		if manual {
			next = nil
		}
		ids := make([]string, len(p.ChannelIDs))
		for i := range ids {
			ids[i] = herald.NewID(herald.PrefixDelivery, e.CreatedAt)
		}
		b.Queue(insertDeliveries, e.TenantID, e.ID, e.Type, manual, next, p.LeaseUntil, e.CreatedAt, ids, p.ChannelIDs)
		r.DeliveryIDs = ids
		r.Deliveries = len(ids)
	}
	return r
}

const (
	insertEvent = `INSERT INTO events(id, tenant_id, type, source, occurred_at, data, idempotency_key, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`
	insertDeliveries = `INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, manual,
		next_attempt_at, lease_until, created_at, updated_at)
		SELECT d.id, $1, $2, $3, d.channel_id, 'pending', $4, $5, $6, $7, $7
		FROM unnest($8::text[], $9::text[]) AS d(id, channel_id)`
)

func publishOne(ctx context.Context, tx pgx.Tx, p *herald.Publication) (herald.PublishResult, error) {
	e := &p.Event
	if e.IdempotencyKey != "" {
		var hash []byte
		var r herald.PublishResult
		var created time.Time
		err := tx.QueryRow(ctx, `SELECT request_hash, event_id, deliveries, suppressed, created_at FROM idempotency_keys
			WHERE tenant_id = $1 AND key = $2`, e.TenantID, e.IdempotencyKey).Scan(&hash, &r.EventID, &r.Deliveries, &r.Suppressed, &created)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return r, err
		case created.Add(p.IdempotencyTTL).After(e.CreatedAt):
			if !bytes.Equal(hash, p.RequestHash) {
				return herald.PublishResult{KeyMismatch: true, EventID: r.EventID}, nil
			}
			r.Replayed = true
			return r, nil
		default: // expired: the key may be used afresh
			if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2`, e.TenantID, e.IdempotencyKey); err != nil {
				return r, err
			}
		}
	}
	b := &pgx.Batch{}
	r := queuePublication(b, p)
	if e.IdempotencyKey != "" {
		b.Queue(`INSERT INTO idempotency_keys(tenant_id, key, request_hash, event_id, deliveries, suppressed, created_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7)`, e.TenantID, e.IdempotencyKey, p.RequestHash, e.ID, r.Deliveries, r.Suppressed, e.CreatedAt)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return herald.PublishResult{}, err
	}
	return r, nil
}

const eventCols = `id, tenant_id, type, source, occurred_at, data, idempotency_key, created_at`

func scanEvent(r pgx.Row) (herald.Event, error) {
	var e herald.Event
	var data []byte
	err := r.Scan(&e.ID, &e.TenantID, &e.Type, &e.Source, &e.OccurredAt, &data, &e.IdempotencyKey, &e.CreatedAt)
	e.OccurredAt, e.CreatedAt, e.Data = e.OccurredAt.UTC(), e.CreatedAt.UTC(), data
	return e, err
}

// GetEvent finds an event.
func (s *Store) GetEvent(ctx context.Context, tenantID, id string) (*herald.Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventCols+` FROM events WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr(err)
	}
	return &e, nil
}

// ListEvents lists events, newest first.
func (s *Store) ListEvents(ctx context.Context, tenantID string, f herald.EventFilter, p herald.Page) ([]herald.Event, error) {
	q := newQuery(`SELECT `+eventCols+` FROM events WHERE tenant_id = $1`, tenantID)
	if f.Type != "" {
		q.and("type = ?", f.Type)
	}
	if f.Source != "" {
		q.and("source = ?", f.Source)
	}
	if !f.Since.IsZero() {
		q.and("created_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		q.and("created_at < ?", f.Until)
	}
	q.page(p)
	rows, err := s.pool.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.Event, error) { return scanEvent(r) })
	return out, mapErr(err)
}
