package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/heraldhq/herald"
)

const deliveryCols = `id, tenant_id, event_id, event_type, channel_id, status, attempts, retry_base, manual,
	next_attempt_at, last_error, last_status, created_at, updated_at`

// claimCols is a claim's row: the delivery's rowid, deliveryCols of
// deliveries d, then eventCols of events e.
const claimCols = `d.rowid, d.id, d.tenant_id, d.event_id, d.event_type, d.channel_id, d.status, d.attempts, d.retry_base, d.manual,
	d.next_attempt_at, d.last_error, d.last_status, d.created_at, d.updated_at,
	e.id, e.tenant_id, e.type, e.source, e.occurred_at, e.data, e.idempotency_key, e.created_at`

// deliveryRow is a delivery's columns (deliveryCols) as scanned.
type deliveryRow struct {
	d                herald.Delivery
	manual           int
	next             sql.NullInt64
	created, updated int64
}

// dest appends the row's scan destinations to to.
func (r *deliveryRow) dest(to []any) []any {
	d := &r.d
	return append(to, &d.ID, &d.TenantID, &d.EventID, &d.EventType, &d.ChannelID, &d.Status, &d.Attempts, &d.RetryBase,
		&r.manual, &r.next, &d.LastError, &d.LastStatus, &r.created, &r.updated)
}

func (r *deliveryRow) delivery() *herald.Delivery {
	r.d.Manual = r.manual == 1
	r.d.NextAttemptAt = fromNullTS(r.next)
	r.d.CreatedAt, r.d.UpdatedAt = fromTS(r.created), fromTS(r.updated)
	return &r.d
}

func scanDelivery(sc scanner) (*herald.Delivery, error) {
	var r deliveryRow
	if err := sc.Scan(r.dest(nil)...); err != nil {
		return nil, err
	}
	return r.delivery(), nil
}

// GetDelivery finds a delivery.
func (s *Store) GetDelivery(ctx context.Context, tenantID, id string) (*herald.Delivery, error) {
	d, err := scanDelivery(s.queryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE tenant_id = ? AND id = ?`, tenantID, id))
	return d, notFound(err)
}

// ListDeliveries lists deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, tenantID string, f herald.DeliveryFilter, p herald.Page) ([]herald.Delivery, error) {
	q := newQuery(`SELECT `+deliveryCols+` FROM deliveries WHERE tenant_id = ?`, tenantID)
	if f.Status != "" {
		q.and(`status = ?`, string(f.Status))
	}
	if f.ChannelID != "" {
		q.and(`channel_id = ?`, f.ChannelID)
	}
	if f.EventID != "" {
		q.and(`event_id = ?`, f.EventID)
	}
	if f.EventType != "" {
		q.and(`event_type = ?`, f.EventType)
	}
	if !f.Since.IsZero() {
		q.and(`created_at >= ?`, ts(f.Since))
	}
	if !f.Until.IsZero() {
		q.and(`created_at < ?`, ts(f.Until))
	}
	q.page(p)
	return list(ctx, s, q, scanDelivery)
}

// ListAttempts lists a delivery's attempts, oldest first: the first one
// kept on the delivery's row (CompleteDeliveries), then the rest.
func (s *Store) ListAttempts(ctx context.Context, tenantID, deliveryID string) ([]herald.Attempt, error) {
	rows, err := s.query(ctx, `SELECT first_attempt_id, id, tenant_id, 1, first_started_at, first_duration_ms, first_status_code,
			first_response_body, first_error_class, first_error, first_trigger
		FROM deliveries WHERE tenant_id = ? AND id = ? AND first_attempt_id IS NOT NULL
		UNION ALL
		SELECT id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body, error_class, error, trigger
		FROM attempts WHERE tenant_id = ? AND delivery_id = ?
		ORDER BY 4, 1`, tenantID, deliveryID, tenantID, deliveryID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []herald.Attempt
	for rows.Next() {
		var a herald.Attempt
		var started int64
		if err := rows.Scan(&a.ID, &a.DeliveryID, &a.TenantID, &a.Number, &started, &a.DurationMS, &a.StatusCode, &a.ResponseBody,
			&a.ErrorClass, &a.Error, &a.Trigger); err != nil {
			return nil, err
		}
		a.StartedAt = fromTS(started)
		out = append(out, a)
	}
	return out, rows.Err()
}

// ClaimDeliveries leases due deliveries within each channel's in-flight
// limit. With one writer, counting leases inside the write transaction is
// free of races.
func (s *Store) ClaimDeliveries(ctx context.Context, p herald.ClaimParams) ([]herald.Claim, error) {
	var claims []herald.Claim
	err := s.writeLoose(ctx, func(tx *wtx) error {
		var err error
		claims, err = claim(tx, p)
		return err
	})
	return claims, err
}

// closeRows closes rows and reports an error that ended their iteration
// early, which rows.Next alone would hide.
func closeRows(rows *sql.Rows) error {
	rows.Close()
	return rows.Err()
}

func claim(tx *wtx, p herald.ClaimParams) ([]herald.Claim, error) {
	now := ts(p.Now)
	busy, err := leasesByChannel(tx, p)
	if err != nil {
		return nil, fmt.Errorf("count in-flight: %w", err)
	}

	full, err := fullChannels(tx, busy, p)
	if err != nil {
		return nil, fmt.Errorf("find full channels: %w", err)
	}
	// The channels with due deliveries, oldest first: a skip scan of the
	// pending index that seeks once per channel, however long its backlog.
	// (Named, the index keeps the planner off deliveries_channel, whose
	// min(channel_id) would walk every finished delivery.) Full channels
	// are left out: finding their oldest unleased delivery walks every
	// leased one, and a dispatcher's queue (handoff) leases many.
	rows, err := tx.Query(`WITH RECURSIVE ch(id) AS (
			SELECT (SELECT min(channel_id) FROM deliveries INDEXED BY deliveries_pending WHERE status = 'pending')
			UNION ALL
			SELECT (SELECT min(channel_id) FROM deliveries INDEXED BY deliveries_pending WHERE status = 'pending' AND channel_id > ch.id)
			FROM ch WHERE ch.id IS NOT NULL),
		d(id, due) AS MATERIALIZED (SELECT id, (SELECT min(next_attempt_at) FROM deliveries
			WHERE status = 'pending' AND channel_id = ch.id AND (lease_until IS NULL OR lease_until <= ?)) FROM ch
			WHERE id IS NOT NULL AND id NOT IN (SELECT value FROM json_each(?)))
		SELECT d.id, COALESCE(c.max_in_flight, 0), COALESCE(c.rate_limit_per_sec > 0, 0) FROM d LEFT JOIN channels c ON c.id = d.id
		WHERE d.due <= ? ORDER BY d.due`, now, full, now)
	if err != nil {
		return nil, fmt.Errorf("find channels with due deliveries: %w", err)
	}
	type dueChannel struct {
		id          string
		maxInFlight int // 0 for a deleted channel
		rated       bool
	}
	var due []dueChannel
	for rows.Next() {
		var c dueChannel
		if err := rows.Scan(&c.id, &c.maxInFlight, &c.rated); err != nil {
			rows.Close()
			return nil, err
		}
		due = append(due, c)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("find channels with due deliveries: %w", err)
	}

	// Each channel offers at most its free slots and what the dispatcher
	// may queue beyond them, so a busy channel's backlog cannot fill the
	// claim and starve the others; a deleted channel's deliveries are all
	// taken, for the dispatcher to end. Every channel's free slots are
	// offered before any queue (see herald.ChannelRoom): a second pass
	// takes the queues, after what the first took of each channel. A
	// rate-limited channel may offer too many here; PickClaims takes only
	// what it may.
	rooms := make([]herald.ChannelRoom, len(due))
	took := make([]int, len(due))
	for i, ch := range due {
		rooms[i] = herald.RoomOf(ch.maxInFlight, busy[ch.id], p.QueueOf(ch.id), ch.rated)
		if ch.maxInFlight == 0 {
			rooms[i] = herald.ChannelRoom{Free: p.Limit}
		}
	}
	var cands []herald.Delivery
	chanIDs := map[string]bool{}
	events := map[string]*herald.Event{}
	rowids := map[string]int64{}
	for pass := range 2 {
		for i, ch := range due {
			n, skip := min(rooms[i].Free, p.Limit-len(cands)), 0
			if pass == 1 {
				if took[i] < rooms[i].Free {
					continue // it has no more due, or the claim is full
				}
				n, skip = min(rooms[i].Queue, p.Limit-len(cands)), took[i]
			}
			if n <= 0 {
				continue
			}
			got, err := claimCandidates(tx, ch.id, now, n, skip, func(d *herald.Delivery, e *herald.Event, rowid int64) {
				events[d.EventID] = e
				rowids[d.ID] = rowid
				cands = append(cands, *d)
				chanIDs[d.ChannelID] = true
			})
			if err != nil {
				return nil, err
			}
			took[i] += got
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(cands, func(a, b herald.Delivery) int { return a.NextAttemptAt.Compare(*b.NextAttemptAt) })

	channels, err := channelsByID(tx, keys(chanIDs))
	if err != nil {
		return nil, err
	}
	rateNext, err := rateSlots(tx, chanIDs)
	if err != nil {
		return nil, err
	}
	picked := herald.PickClaims(p, cands, channels, busy, rateNext)
	// By rowid, a lease skips looking the delivery's id up in its index.
	upd, err := tx.Prepare(`UPDATE deliveries SET lease_until = ? WHERE rowid = ?`)
	if err != nil {
		return nil, err
	}
	for _, c := range picked {
		if _, err := upd.Exec(ts(c.LeaseUntil), rowids[c.Delivery.ID]); err != nil {
			return nil, err
		}
	}
	for id, next := range rateNext {
		if _, err := tx.Exec(`UPDATE channels SET rate_next_at = ? WHERE id = ?`, ts(next), id); err != nil {
			return nil, err
		}
	}
	for i := range picked {
		e, ok := events[picked[i].Delivery.EventID]
		if !ok {
			return nil, fmt.Errorf("delivery %s: event %s missing", picked[i].Delivery.ID, picked[i].Delivery.EventID)
		}
		picked[i].Event = *e
	}
	return picked, nil
}

// leasesSQL counts each channel's live leases: automatic ones, only ever
// on pending deliveries, through deliveries_pending (so it reads the
// whole backlog: the dispatcher of a running Herald gives its own counts
// instead), and manual ones through deliveries_manual.
const leasesSQL = `SELECT channel_id, count(*) FROM (
		SELECT channel_id FROM deliveries INDEXED BY deliveries_pending WHERE status = 'pending' AND manual = 0 AND lease_until > ?
		UNION ALL
		SELECT channel_id FROM deliveries INDEXED BY deliveries_manual WHERE manual = 1 AND lease_until IS NOT NULL AND lease_until > ?)
	GROUP BY channel_id`

// claimCandidates reads up to n of a channel's due, unleased deliveries
// after the first skip, oldest first, each with its event, and counts
// them. Each delivery comes with its event: reading the events apart, by
// a list of ids, cost a claim about a fifth more. (A delivery whose event
// is missing cannot be sent; it stays pending and holds up nothing else.)
func claimCandidates(tx *wtx, channelID string, now int64, n, skip int, add func(*herald.Delivery, *herald.Event, int64)) (int, error) {
	rows, err := tx.Query(`SELECT `+claimCols+` FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.channel_id = ? AND d.status = 'pending' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until <= ?)
		ORDER BY d.next_attempt_at LIMIT ? OFFSET ?`, channelID, now, now, n, skip)
	if err != nil {
		return 0, fmt.Errorf("find due deliveries: %w", err)
	}
	got := 0
	for rows.Next() {
		var dr deliveryRow
		var er eventRow
		var rowid int64
		dest := make([]any, 0, 23) // claimCols
		if err := rows.Scan(er.dest(dr.dest(append(dest, &rowid)))...); err != nil {
			rows.Close()
			return 0, err
		}
		add(dr.delivery(), er.event(), rowid)
		got++
	}
	if err := closeRows(rows); err != nil {
		return 0, fmt.Errorf("find due deliveries: %w", err)
	}
	return got, nil
}

// leasesByChannel returns each channel's requests in flight: the
// dispatcher's own count when it gives one (a copy, as claiming adds to
// it), else the channel's unexpired leases.
func leasesByChannel(tx *wtx, p herald.ClaimParams) (map[string]int, error) {
	busy := make(map[string]int, len(p.Busy))
	if p.Busy != nil {
		for ch, n := range p.Busy {
			busy[ch] = n
		}
		return busy, nil
	}
	rows, err := tx.Query(leasesSQL, ts(p.Now), ts(p.Now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var ch string
		var n int
		if err := rows.Scan(&ch, &n); err != nil {
			return nil, err
		}
		busy[ch] = n
	}
	return busy, rows.Err()
}

// fullChannels returns, as a JSON array, the channels whose requests in
// flight (busy) fill their max_in_flight, and for a channel without a rate
// limit also the queue the claim may add: a claim has nothing to give them.
func fullChannels(tx *wtx, busy map[string]int, p herald.ClaimParams) (string, error) {
	if len(busy) == 0 {
		return "[]", nil
	}
	ids := make([]string, 0, len(busy))
	for id := range busy {
		ids = append(ids, id)
	}
	rows, err := tx.Query(`SELECT id, max_in_flight, rate_limit_per_sec > 0 FROM channels WHERE id IN (SELECT value FROM json_each(?))`, idList(ids))
	if err != nil {
		return "", err
	}
	defer rows.Close()
	full := ids[:0]
	for rows.Next() {
		var id string
		var limit int
		var rated bool
		if err := rows.Scan(&id, &limit, &rated); err != nil {
			return "", err
		}
		if !rated {
			limit += p.QueueOf(id)
		}
		if limit > 0 && busy[id] >= limit {
			full = append(full, id)
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return idList(full), nil
}

// rateSlots reads the next rate slot of the rate-limited channels among ids.
func rateSlots(tx *wtx, ids map[string]bool) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	rows, err := tx.Query(`SELECT id, COALESCE(rate_next_at, 0) FROM channels WHERE rate_limit_per_sec > 0
		AND id IN (SELECT value FROM json_each(?))`, idList(keys(ids)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var next int64
		if err := rows.Scan(&id, &next); err != nil {
			return nil, err
		}
		out[id] = fromTS(next)
	}
	return out, rows.Err()
}

func keys(m map[string]bool) []any {
	out := make([]any, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func channelsByID(tx *wtx, ids []any) (map[string]*herald.Channel, error) {
	out := make(map[string]*herald.Channel, len(ids))
	rows, err := tx.Query(`SELECT `+channelCols+` FROM channels WHERE id IN (SELECT value FROM json_each(?))`, idList(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, err
		}
		out[c.ID] = c
	}
	return out, rows.Err()
}

func eventsByID(tx *wtx, ids []any) (map[string]*herald.Event, error) {
	out := make(map[string]*herald.Event, len(ids))
	rows, err := tx.Query(`SELECT `+eventCols+` FROM events WHERE id IN (SELECT value FROM json_each(?))`, idList(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out[e.ID] = e
	}
	return out, rows.Err()
}

// CompleteDeliveries records attempts and new delivery states.
func (s *Store) CompleteDeliveries(ctx context.Context, cs []herald.Completion) error {
	// Automatic attempts' results need no flush: lost to a power cut, the
	// delivery is sent again. A manual attempt's is answered to a person.
	loose, config := true, false
	for _, c := range cs {
		loose = loose && c.Attempt.Trigger == herald.TriggerAuto
		config = config || c.DisableChannel != "" || c.DeleteChannel // a channel gets disabled or deleted
	}
	write := s.write
	switch {
	case config:
		write = s.configWrite
	case loose:
		write = s.writeLoose
	}
	return write(ctx, func(tx *wtx) error {
		// The attempts go in together, several to a statement (rows.go).
		attempts := rowBatch{ins: attemptRows}
		defer attempts.reset()
		for _, c := range cs {
			a, d := &c.Attempt, &c.Delivery
			kept, err := keepFirstAttempt(tx, d, a)
			if err != nil {
				return fmt.Errorf("update delivery: %w", err)
			}
			if !kept {
				// A completion without an attempt ends a delivery whose channel went away.
				if a.ID != "" {
					attempts.args = append(attempts.args, a.ID, d.ID, d.TenantID, a.Number, ts(a.StartedAt), a.DurationMS, a.StatusCode, a.ResponseBody,
						a.ErrorClass, a.Error, a.Trigger)
				}
				if _, err := tx.Exec(`UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL,
					last_error = ?, last_status = ?, updated_at = ? WHERE id = ?`,
					string(d.Status), d.Attempts, nullTS(d.NextAttemptAt), d.LastError, d.LastStatus, ts(d.UpdatedAt), d.ID); err != nil {
					return fmt.Errorf("update delivery: %w", err)
				}
			}
			if c.DisableChannel != "" {
				if _, err := tx.Exec(`UPDATE channels SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?`,
					c.DisableChannel, ts(d.UpdatedAt), d.ChannelID); err != nil {
					return err
				}
				if err := failPending(tx, d.ChannelID, "channel disabled: "+c.DisableChannel, d.UpdatedAt); err != nil {
					return err
				}
			}
			if c.DeleteChannel {
				// The channel may be gone already (deleted meanwhile, or by
				// another completion of the same batch): nothing to do then.
				if err := deleteChannel(tx, d.TenantID, d.ChannelID); err != nil && !errors.Is(err, herald.ErrNotFound) {
					return err
				}
				if err := failPending(tx, d.ChannelID, "channel deleted: the target answered 410 Gone", d.UpdatedAt); err != nil {
					return err
				}
			}
		}
		if err := attempts.insert(tx); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
		return nil
	})
}

// keepFirstAttempt records a delivery's first attempt on its row, with its
// new state: most deliveries succeed at once, and a row of their own in
// attempts, with its two index entries, was a third of a result's write.
// It reports false, having written nothing, for a later attempt, and for
// a first one when the row already holds one (a second send of the
// delivery whose lease ran out, or a delivery gone): those go to attempts.
func keepFirstAttempt(tx *wtx, d *herald.Delivery, a *herald.Attempt) (bool, error) {
	if a.ID == "" || a.Number != 1 {
		return false, nil
	}
	res, err := tx.Exec(`UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL,
		last_error = ?, last_status = ?, updated_at = ?, first_attempt_id = ?, first_started_at = ?, first_duration_ms = ?,
		first_status_code = ?, first_response_body = ?, first_error_class = ?, first_error = ?, first_trigger = ?
		WHERE id = ? AND first_attempt_id IS NULL`,
		string(d.Status), d.Attempts, nullTS(d.NextAttemptAt), d.LastError, d.LastStatus, ts(d.UpdatedAt),
		a.ID, ts(a.StartedAt), a.DurationMS, a.StatusCode, a.ResponseBody, a.ErrorClass, a.Error, a.Trigger, d.ID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseDeliveries drops leases so the deliveries are due again.
func (s *Store) ReleaseDeliveries(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.writeLoose(ctx, func(tx *wtx) error {
		_, err := tx.Exec(`UPDATE deliveries SET lease_until = NULL WHERE id IN (SELECT value FROM json_each(?))`, idList(ids))
		return err
	})
}

// LeaseDelivery leases a finished delivery for one manual attempt.
func (s *Store) LeaseDelivery(ctx context.Context, tenantID, id string, now, until time.Time) (*herald.Claim, error) {
	var c *herald.Claim
	err := s.write(ctx, func(tx *wtx) error {
		var lease sql.NullInt64
		d, err := scanDelivery(tx.QueryRow(`SELECT `+deliveryCols+` FROM deliveries WHERE tenant_id = ? AND id = ?`, tenantID, id))
		if err != nil {
			return notFound(err)
		}
		if err := tx.QueryRow(`SELECT lease_until FROM deliveries WHERE id = ?`, id).Scan(&lease); err != nil {
			return err
		}
		if err := herald.RetryConflict(d, fromNullTS(lease), now); err != nil {
			return err
		}
		chs, err := channelsByID(tx, []any{d.ChannelID})
		if err != nil {
			return err
		}
		ch := chs[d.ChannelID]
		if ch == nil {
			return &herald.ConflictError{Detail: "the delivery's channel was deleted"}
		}
		if !ch.Enabled {
			return &herald.ConflictError{Detail: fmt.Sprintf("channel %s is disabled (%s); enable it with PATCH {\"enabled\": true} first", ch.ID, ch.DisabledReason)}
		}
		evs, err := eventsByID(tx, []any{d.EventID})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE deliveries SET lease_until = ?, manual = 1 WHERE id = ?`, ts(until), id); err != nil {
			return err
		}
		c = &herald.Claim{Delivery: *d, Event: *evs[d.EventID], Channel: ch}
		return nil
	})
	return c, err
}

// recoverSQL finds the failed deliveries through deliveries_failed, which
// holds only those (TestIndexedQueries).
const recoverSQL = `UPDATE deliveries SET status = 'pending', next_attempt_at = ?, retry_base = attempts, manual = 0, updated_at = ?
	WHERE tenant_id = ? AND channel_id = ? AND status = 'failed' AND created_at >= ?`

// RecoverDeliveries re-queues a channel's failed deliveries since a time.
func (s *Store) RecoverDeliveries(ctx context.Context, tenantID, channelID string, since, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *wtx) error {
		var enabled int
		var reason string
		err := tx.QueryRow(`SELECT enabled, disabled_reason FROM channels WHERE tenant_id = ? AND id = ?`, tenantID, channelID).Scan(&enabled, &reason)
		if err != nil {
			return notFound(err)
		}
		if enabled == 0 {
			return &herald.ConflictError{Detail: fmt.Sprintf("channel is disabled (%s); enable it with PATCH {\"enabled\": true} before recovering", reason)}
		}
		res, err := tx.Exec(recoverSQL, ts(now), ts(now), tenantID, channelID, ts(since))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
