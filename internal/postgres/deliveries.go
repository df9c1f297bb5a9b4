package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

const deliveryCols = `id, tenant_id, event_id, event_type, channel_id, status, attempts, retry_base, manual,
	next_attempt_at, last_error, last_status, created_at, updated_at`

func scanDelivery(r pgx.Row) (herald.Delivery, error) {
	var d herald.Delivery
	err := r.Scan(&d.ID, &d.TenantID, &d.EventID, &d.EventType, &d.ChannelID, &d.Status, &d.Attempts, &d.RetryBase,
		&d.Manual, &d.NextAttemptAt, &d.LastError, &d.LastStatus, &d.CreatedAt, &d.UpdatedAt)
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	if d.NextAttemptAt != nil {
		t := d.NextAttemptAt.UTC()
		d.NextAttemptAt = &t
	}
	return d, err
}

func collectDeliveries(rows pgx.Rows, err error) ([]herald.Delivery, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.Delivery, error) { return scanDelivery(r) })
	return out, mapErr(err)
}

// GetDelivery finds a delivery.
func (s *Store) GetDelivery(ctx context.Context, tenantID, id string) (*herald.Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr(err)
	}
	return &d, nil
}

// ListDeliveries lists deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, tenantID string, f herald.DeliveryFilter, p herald.Page) ([]herald.Delivery, error) {
	q := newQuery(`SELECT `+deliveryCols+` FROM deliveries WHERE tenant_id = $1`, tenantID)
	if f.Status != "" {
		q.and("status = ?", string(f.Status))
	}
	if f.ChannelID != "" {
		q.and("channel_id = ?", f.ChannelID)
	}
	if f.EventID != "" {
		q.and("event_id = ?", f.EventID)
	}
	if f.EventType != "" {
		q.and("event_type = ?", f.EventType)
	}
	if !f.Since.IsZero() {
		q.and("created_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		q.and("created_at < ?", f.Until)
	}
	q.page(p)
	return collectDeliveries(s.pool.Query(ctx, q.sql.String(), q.args...))
}

// ListAttempts lists a delivery's attempts, oldest first.
func (s *Store) ListAttempts(ctx context.Context, tenantID, deliveryID string) ([]herald.Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT first_attempt_id, id, tenant_id, 1, first_started_at, first_duration_ms, first_status_code,
			first_response_body, first_error_class, first_error, first_trigger
		FROM deliveries WHERE tenant_id = $1 AND id = $2 AND first_attempt_id IS NOT NULL
		UNION ALL
		SELECT id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body, error_class, error, trigger
		FROM attempts WHERE tenant_id = $1 AND delivery_id = $2
		ORDER BY 4, 1`, tenantID, deliveryID)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.Attempt, error) {
		var a herald.Attempt
		err := r.Scan(&a.ID, &a.DeliveryID, &a.TenantID, &a.Number, &a.StartedAt, &a.DurationMS, &a.StatusCode, &a.ResponseBody,
			&a.ErrorClass, &a.Error, &a.Trigger)
		a.StartedAt = a.StartedAt.UTC()
		return a, err
	})
	return out, mapErr(err)
}

// ClaimDeliveries leases due deliveries. The channels with due deliveries
// are locked while their in-flight leases are counted, so a channel's limit
// holds across processes; then each offers its oldest due deliveries, up to
// its free slots (and p.Queue more), locked with SKIP LOCKED.
func (s *Store) ClaimDeliveries(ctx context.Context, p herald.ClaimParams) ([]herald.Claim, error) {
	if p.Queue != 0 && p.Busy == nil {
		return nil, errors.New("claim deliveries: ClaimParams.Queue needs Busy and Held, the dispatcher's own counts")
	}
	var claims []herald.Claim
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		claims, err = claim(ctx, tx, p, s.endInterrupted(p.Now))
		return err
	})
	return claims, err
}

// dueChannelsSQL lists the channels with due, unleased deliveries, oldest
// due first, with their in-flight limits (NULL once deleted) and leases. A
// loose index scan of deliveries_pending seeks once per channel with pending
// deliveries; per channel, its oldest unleased delivery is the first such
// entry of deliveries_pending in due order, and its leases are counted in
// deliveries_leased, each an index scan that the channel's leases bound.
// (Counted for all channels at once, grouped, the leases took a pass over
// the whole table once claims ran without bitmap scans; see claim.)
//
// Both scans step over the channel's leased deliveries, a queue of
// hundreds for a busy channel, so the channels this process alone keeps
// full are left out first: those whose requests in flight and queued
// ($3, of the channels in $2) reach their limit and queue ($4), as other
// processes' leases would only fill them more (see inFlight).
const dueChannelsSQL = `WITH RECURSIVE ch(id) AS (
		SELECT min(channel_id) FROM deliveries WHERE status = 'pending'
		UNION ALL
		SELECT (SELECT min(channel_id) FROM deliveries WHERE status = 'pending' AND channel_id > ch.id)
		FROM ch WHERE ch.id IS NOT NULL),
	full_ AS (SELECT b.id FROM unnest($2::text[], $3::int[], $4::int[]) AS b(id, busy, queue)
		JOIN channels c ON c.id = b.id
		WHERE c.max_in_flight > 0 AND b.busy >= c.max_in_flight + CASE WHEN c.rate_limit_per_sec > 0 THEN 0 ELSE b.queue END),
	open AS (SELECT id FROM ch WHERE id IS NOT NULL AND id NOT IN (SELECT id FROM full_))
	SELECT ch.id, c.max_in_flight, l.n FROM open ch
	CROSS JOIN LATERAL (SELECT next_attempt_at AS due FROM deliveries
		WHERE status = 'pending' AND channel_id = ch.id AND next_attempt_at IS NOT NULL AND (lease_until IS NULL OR lease_until <= $1)
		ORDER BY next_attempt_at LIMIT 1) d
	CROSS JOIN LATERAL (SELECT count(*) AS n FROM deliveries WHERE channel_id = ch.id AND lease_until > $1) l
	LEFT JOIN channels c ON c.id = ch.id
	WHERE d.due <= $1
	ORDER BY d.due, ch.id`

// busyChannels returns the channels with requests of this process in
// flight or queued, their counts, and what each may queue: dueChannelsSQL's
// $2 to $4.
func busyChannels(p herald.ClaimParams) (ids []string, busy, queue []int32) {
	for id, n := range p.Busy {
		if n > 0 {
			ids = append(ids, id)
			busy = append(busy, int32(n))
			queue = append(queue, int32(p.QueueOf(id)))
		}
	}
	return ids, busy, queue
}

// endInterruptedEvery is how often claims end interrupted manual
// attempts. Each look walks every lease (deliveries_leased): made by
// every claim, it took about 7% of the statements' time in a burst
// (docs/benchmarks-log.md).
const endInterruptedEvery = time.Second

// endInterrupted reports whether a claim at now is to end interrupted
// manual attempts: the first claim, and then one a second, by the claims'
// clock (a clock set back starts over).
func (s *Store) endInterrupted(now time.Time) bool {
	last := s.interrupted.Load()
	if n := now.UnixNano(); n-last >= int64(endInterruptedEvery) || n < last {
		return s.interrupted.CompareAndSwap(last, n)
	}
	return false
}

// Settings a transaction gives itself (see claim and CompleteDeliveries).
// A claim reads only by index: its prepared statements keep the generic
// plans made while the tables were small (until autovacuum analyses them,
// about once a minute), and a plan that read a new table whole read it
// whole in every claim as it grew (TestClaimPlansOnNewTables).
const (
	noBitmapScans = `SET LOCAL enable_bitmapscan = off`
	noSeqScans    = `SET LOCAL enable_seqscan = off`
	noFlushWait   = `SET LOCAL synchronous_commit = off`
)

// claimSettings are a claim transaction's own settings, which the plan
// tests plan under too.
func claimSettings() []string { return []string{noBitmapScans, noSeqScans, noFlushWait} }

// setLeasesSQL sets a claim's leases; claimEventsSQL reads its events.
const (
	setLeasesSQL = `UPDATE deliveries SET lease_until = l.until FROM unnest($1::text[], $2::timestamptz[]) AS l(id, until)
		WHERE deliveries.id = l.id`
	claimEventsSQL = `SELECT ` + eventCols + ` FROM events WHERE id = ANY($1)`
)

// busySQL counts the leases of the channels a claim has locked, channel
// by channel: as one count grouped by channel, its generic plan read the
// whole table.
const busySQL = `SELECT u.id, (SELECT count(*) FROM deliveries WHERE channel_id = u.id AND lease_until > $2)
	FROM unnest($1::text[]) AS u(id)`

// inFlight is a channel's requests in flight as a claim counts them, and
// how many it may queue beyond its free slots. Without the dispatcher's
// own counts (p.Busy) they are its leases, and nothing is queued.
// Otherwise they are the other processes' leases (all less what the
// dispatcher holds) and its own requests, and p.Queue may be queued when
// the others hold none (see herald.ClaimParams.Queue).
func inFlight(p herald.ClaimParams, id string, leases int) (n, queue int) {
	if p.Busy == nil {
		return leases, 0
	}
	others := max(leases-p.Held[id], 0)
	if others == 0 {
		queue = p.QueueOf(id)
	}
	return others + p.Busy[id], queue
}

// claimCandidatesSQL takes the offered channels' due deliveries, channel
// by channel in due order (a nested loop over the arrays), locking them:
// first each channel's oldest for its free slots ($2), then the next ones
// for its queue ($3), until $5 are found; so every channel's free slots
// come before any queue (see herald.ChannelRoom). The second part passes
// over what the first took, as it sees the rows in the same order.
const claimCandidatesSQL = `SELECT d.* FROM unnest($1::text[], $2::int[]) AS c(id, n)
	CROSS JOIN LATERAL (SELECT ` + deliveryCols + ` FROM deliveries
		WHERE channel_id = c.id AND status = 'pending' AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until <= $4)
		ORDER BY next_attempt_at LIMIT c.n FOR UPDATE SKIP LOCKED) d
	UNION ALL
	SELECT d.* FROM unnest($1::text[], $2::int[], $3::int[]) AS c(id, n, q)
	CROSS JOIN LATERAL (SELECT ` + deliveryCols + ` FROM deliveries
		WHERE channel_id = c.id AND status = 'pending' AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until <= $4)
		ORDER BY next_attempt_at OFFSET c.n LIMIT c.q FOR UPDATE SKIP LOCKED) d
	LIMIT $5`

// claim leases due deliveries; with endInterrupted it first ends the
// manual attempts whose process died.
func claim(ctx context.Context, tx pgx.Tx, p herald.ClaimParams, endInterrupted bool) ([]herald.Claim, error) {
	// A manual attempt (retry, channel test) whose process died never
	// reported; within endInterruptedEvery after its lease has passed it
	// ends as failed, to be retried by hand. (SQLite does this at start,
	// being the only process.) Then the channels with due, unleased
	// deliveries, oldest due first: one at its in-flight limit is passed
	// over without reading its backlog. Both go in one round trip, as the
	// claim's other independent statements do.
	//
	// Three settings come first, for this transaction only:
	//   - No sequential scans: see noSeqScans.
	//   - No bitmap scans. Every lease and every result writes a new
	//     version of the delivery's row, and the old versions' entries stay
	//     in deliveries_pending and deliveries_leased until a vacuum. A
	//     plain index scan marks an entry dead once it finds its row gone,
	//     and the next scan steps over it; a bitmap scan marks nothing, so
	//     it read every dead entry again on every claim. With the per-channel
	//     scans above, a claim during a drain of 30,000 took 2–3 ms instead
	//     of 5–7 (docs/benchmarks-log.md).
	//   - No waiting for the commit's flush. A claim lost to a crash of
	//     PostgreSQL leaves its deliveries unleased, to be claimed and sent
	//     again, which at-least-once allows; SQLite commits its claims
	//     unflushed too.
	b := &pgx.Batch{}
	for _, q := range claimSettings() {
		b.Queue(q)
	}
	if endInterrupted {
		b.Queue(`UPDATE deliveries SET status = 'failed', lease_until = NULL, last_error = 'interrupted; retry by hand'
			WHERE lease_until IS NOT NULL AND lease_until <= $1 AND manual AND status = 'pending' AND next_attempt_at IS NULL`, p.Now)
	}
	var due []string
	deleted := map[string]bool{}
	busyIDs, busyN, queueN := busyChannels(p)
	b.Queue(dueChannelsSQL, p.Now, busyIDs, busyN, queueN).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var maxInFlight *int // nil: the channel was deleted
			var leased int
			if err := rows.Scan(&id, &maxInFlight, &leased); err != nil {
				return err
			}
			if n, queue := inFlight(p, id, leased); maxInFlight == nil {
				deleted[id] = true
			} else if n >= *maxInFlight+queue {
				continue
			}
			due = append(due, id)
		}
		return rows.Err()
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("find channels with due deliveries: %w", err)
	}
	var live []string
	for _, id := range due {
		if !deleted[id] {
			live = append(live, id)
		}
	}

	// Lock order: channels, then their deliveries; after the deliveries a
	// claim waits for no lock, so no deadlock can run through a delivery row
	// a claim holds.
	//
	// The channels are locked oldest due first, up to p.Limit of them (each
	// offers at least one delivery), skipping those another claim holds:
	// processes woken together by one publication then share its channels
	// instead of queueing for the same ones and coming away empty. Only a
	// claim that could lock none waits, as claims always have (waiting
	// rather than returning empty keeps every process busy on a few busy
	// channels), in id order and holding no other channel lock, so claims
	// cannot deadlock with each other.
	//
	// Disabling or deleting a channel (failPending) locks the channel, then
	// its deliveries SKIP LOCKED: it waits only for the channel, which a
	// claim holds while waiting for nothing else. CompleteDeliveries locks
	// delivery rows, waiting, then a channel it disables: it may wait for a
	// claim holding that channel or one of those rows (an expired lease
	// claimed again), and such a claim is past all waiting. (When claims
	// locked deliveries before waiting for channels, that second case could
	// deadlock.) Unchanged: the statement above waits for delivery rows
	// before the channels are locked, and a completion batch disabling two
	// channels locks them in batch order.
	locked := map[string]*herald.Channel{}
	scanLocked := func(rows pgx.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanChannel(rows)
			if err != nil {
				return err
			}
			locked[c.ID] = c
		}
		return rows.Err()
	}
	if len(live) > 0 {
		// (A channel another claim has just drained is passed over too.)
		if err := scanLocked(tx.Query(ctx, `SELECT `+channelCols+` FROM unnest($1::text[]) WITH ORDINALITY AS u(want, ord)
			JOIN channels ON channels.id = u.want
			WHERE EXISTS (SELECT FROM deliveries WHERE channel_id = u.want AND status = 'pending' AND next_attempt_at <= $3
				AND (lease_until IS NULL OR lease_until <= $3))
			ORDER BY u.ord LIMIT $2 FOR UPDATE OF channels SKIP LOCKED`, live, p.Limit, p.Now)); err != nil {
			return nil, err
		}
		if len(locked) == 0 && len(deleted) == 0 {
			if err := scanLocked(tx.Query(ctx, `SELECT `+channelCols+` FROM channels WHERE id = ANY($1) ORDER BY id FOR UPDATE`,
				live[:min(len(live), p.Limit)])); err != nil {
				return nil, err
			}
		}
	}
	if len(locked) == 0 && len(deleted) == 0 {
		return nil, nil
	}
	busy, queue := map[string]int{}, map[string]int{}
	lockedIDs := make([]string, 0, len(locked))
	for id := range locked {
		lockedIDs = append(lockedIDs, id)
	}
	rows, err := tx.Query(ctx, busySQL, lockedIDs, p.Now)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		var leases int
		if err := rows.Scan(&id, &leases); err != nil {
			rows.Close()
			return nil, err
		}
		busy[id], queue[id] = inFlight(p, id, leases)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	// Each channel offers at most its free slots, now counted under its
	// lock, and what the dispatcher may queue beyond them, so a busy
	// channel's backlog cannot fill the claim and starve the others; a
	// deleted channel's deliveries are all taken, for the dispatcher to
	// end. See claimCandidatesSQL.
	var offerIDs []string
	var offerFree, offerQueue []int32
	for _, id := range due {
		var r herald.ChannelRoom
		if c, ok := locked[id]; ok {
			r = herald.RoomOf(c.MaxInFlight, busy[id], queue[id], c.RateLimitPerSec > 0)
		} else if deleted[id] {
			r.Free = p.Limit
		}
		if r.Free+r.Queue > 0 {
			offerIDs = append(offerIDs, id)
			offerFree = append(offerFree, int32(min(r.Free, p.Limit)))
			offerQueue = append(offerQueue, int32(min(r.Queue, p.Limit)))
		}
	}
	if len(offerIDs) == 0 {
		return nil, nil
	}
	cands, err := collectDeliveries(tx.Query(ctx, claimCandidatesSQL, offerIDs, offerFree, offerQueue, p.Now, p.Limit))
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	slices.SortStableFunc(cands, func(a, b herald.Delivery) int { return a.NextAttemptAt.Compare(*b.NextAttemptAt) })
	offered := map[string]bool{}
	for _, d := range cands {
		offered[d.ChannelID] = true
	}

	rateNext := map[string]time.Time{}
	for id, c := range locked {
		if c.RateLimitPerSec > 0 && offered[id] {
			rateNext[id] = time.Time{}
		}
	}
	if len(rateNext) > 0 {
		rows, err := tx.Query(ctx, `SELECT id, rate_next_at FROM channels WHERE id = ANY($1) AND rate_next_at IS NOT NULL`, lockedIDs)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var next time.Time
			if err := rows.Scan(&id, &next); err != nil {
				rows.Close()
				return nil, err
			}
			if _, ok := rateNext[id]; ok {
				rateNext[id] = next
			}
		}
		rows.Close()
	}
	picked := herald.PickClaims(p, cands, locked, busy, rateNext)
	if len(picked) == 0 {
		return nil, nil
	}
	ids := make([]string, len(picked))
	leases := make([]time.Time, len(picked))
	eventIDs := map[string]bool{}
	for i, c := range picked {
		ids[i], leases[i] = c.Delivery.ID, c.LeaseUntil
		eventIDs[c.Delivery.EventID] = true
	}
	evIDs := make([]string, 0, len(eventIDs))
	for id := range eventIDs {
		evIDs = append(evIDs, id)
	}
	// The leases, the rate schedules and reading the events back: one
	// round trip.
	b = &pgx.Batch{}
	b.Queue(setLeasesSQL, ids, leases)
	for id, next := range rateNext {
		b.Queue(`UPDATE channels SET rate_next_at = $1 WHERE id = $2`, next, id)
	}
	var events []herald.Event
	b.Queue(claimEventsSQL, evIDs).Query(func(rows pgx.Rows) error {
		var err error
		events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.Event, error) { return scanEvent(r) })
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	byID := make(map[string]herald.Event, len(events))
	for _, e := range events {
		byID[e.ID] = e
	}
	for i := range picked {
		e, ok := byID[picked[i].Delivery.EventID]
		if !ok {
			return nil, fmt.Errorf("delivery %s: event %s missing", picked[i].Delivery.ID, picked[i].Delivery.EventID)
		}
		picked[i].Event = e
	}
	return picked, nil
}

// keepFirstAttemptSQL writes a delivery's new state ($1–$7) with its
// first attempt ($8–$15) on its row, which the result rewrites anyway.
// Should the row hold a first attempt already (a second send of a
// delivery whose lease ran out), that one stays and this attempt goes to
// attempts: the row as updated names the other attempt. (The update sees
// the row's latest version, so two processes recording first attempts at
// once keep both.)
const keepFirstAttemptSQL = `WITH u AS (
		UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_until = NULL,
			last_error = $4, last_status = $5, updated_at = $6,
			first_attempt_id = COALESCE(first_attempt_id, $8),
			first_started_at = CASE WHEN first_attempt_id IS NULL THEN $9 ELSE first_started_at END,
			first_duration_ms = CASE WHEN first_attempt_id IS NULL THEN $10 ELSE first_duration_ms END,
			first_status_code = CASE WHEN first_attempt_id IS NULL THEN $11 ELSE first_status_code END,
			first_response_body = CASE WHEN first_attempt_id IS NULL THEN $12 ELSE first_response_body END,
			first_error_class = CASE WHEN first_attempt_id IS NULL THEN $13 ELSE first_error_class END,
			first_error = CASE WHEN first_attempt_id IS NULL THEN $14 ELSE first_error END,
			first_trigger = CASE WHEN first_attempt_id IS NULL THEN $15 ELSE first_trigger END
		WHERE id = $7
		RETURNING tenant_id, first_attempt_id)
	INSERT INTO attempts(id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body, error_class, error, trigger)
	SELECT $8, $7, u.tenant_id, 1, $9, $10, $11, $12, $13, $14, $15 FROM u WHERE u.first_attempt_id <> $8`

// CompleteDeliveries records attempts and new delivery states.
func (s *Store) CompleteDeliveries(ctx context.Context, cs []herald.Completion) error {
	// Automatic attempts' results commit without waiting for the flush, as
	// in SQLite: lost to a crash, the delivery is sent again. A manual
	// attempt's result is answered to a person, and a disabled or deleted
	// channel is configuration; those wait.
	loose := true
	for _, c := range cs {
		loose = loose && c.Attempt.Trigger == herald.TriggerAuto && c.DisableChannel == "" && !c.DeleteChannel
	}
	// One round trip: with a channel's slot freed only once its result
	// is written, the write's wait bounds how fast a channel delivers.
	return s.batchTx(ctx, func(b *pgx.Batch) {
		if loose {
			b.Queue(noFlushWait)
		}
		for _, c := range cs {
			a, d := &c.Attempt, &c.Delivery
			switch {
			case a.ID != "" && a.Number == 1:
				b.Queue(keepFirstAttemptSQL, string(d.Status), d.Attempts, d.NextAttemptAt, d.LastError, d.LastStatus, d.UpdatedAt, d.ID,
					a.ID, a.StartedAt, a.DurationMS, a.StatusCode, a.ResponseBody, a.ErrorClass, a.Error, a.Trigger)
			case a.ID != "":
				b.Queue(`INSERT INTO attempts(id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body,
					error_class, error, trigger) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
					a.ID, d.ID, d.TenantID, a.Number, a.StartedAt, a.DurationMS, a.StatusCode, a.ResponseBody, a.ErrorClass, a.Error, a.Trigger)
				fallthrough
			default: // without an attempt: it ends a delivery whose channel went away
				b.Queue(`UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_until = NULL,
					last_error = $4, last_status = $5, updated_at = $6 WHERE id = $7`,
					string(d.Status), d.Attempts, d.NextAttemptAt, d.LastError, d.LastStatus, d.UpdatedAt, d.ID)
			}
			if c.DisableChannel != "" {
				b.Queue(`UPDATE channels SET enabled = false, disabled_reason = $1, updated_at = $2 WHERE id = $3`,
					c.DisableChannel, d.UpdatedAt, d.ChannelID)
				b.Queue(failPendingSQL, "channel disabled: "+c.DisableChannel, d.UpdatedAt, d.ChannelID)
				b.Queue(bumpConfig)
			}
			if c.DeleteChannel {
				// Deleting nothing is fine: the channel may be gone already.
				b.Queue(`DELETE FROM subscriptions WHERE tenant_id = $1 AND channel_id = $2`, d.TenantID, d.ChannelID)
				b.Queue(`DELETE FROM channels WHERE tenant_id = $1 AND id = $2`, d.TenantID, d.ChannelID)
				b.Queue(failPendingSQL, "channel deleted: the target answered 410 Gone", d.UpdatedAt, d.ChannelID)
				b.Queue(bumpConfig)
			}
		}
	})
}

// ReleaseDeliveries drops leases so the deliveries are due again.
func (s *Store) ReleaseDeliveries(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE deliveries SET lease_until = NULL WHERE id = ANY($1)`, ids)
	if err == nil {
		s.notify()
	}
	return mapErr(err)
}

// LeaseDelivery leases a finished delivery for one manual attempt.
func (s *Store) LeaseDelivery(ctx context.Context, tenantID, id string, now, until time.Time) (*herald.Claim, error) {
	var c *herald.Claim
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var lease *time.Time
		d, err := scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenantID, id))
		if err != nil {
			return mapErr(err)
		}
		if err := tx.QueryRow(ctx, `SELECT lease_until FROM deliveries WHERE id = $1`, id).Scan(&lease); err != nil {
			return err
		}
		if err := herald.RetryConflict(&d, lease, now); err != nil {
			return err
		}
		ch, err := scanChannel(tx.QueryRow(ctx, `SELECT `+channelCols+` FROM channels WHERE id = $1`, d.ChannelID))
		if errors.Is(err, pgx.ErrNoRows) {
			return &herald.ConflictError{Detail: "the delivery's channel was deleted"}
		}
		if err != nil {
			return err
		}
		if !ch.Enabled {
			return &herald.ConflictError{Detail: fmt.Sprintf("channel %s is disabled (%s); enable it with PATCH {\"enabled\": true} first", ch.ID, ch.DisabledReason)}
		}
		e, err := scanEvent(tx.QueryRow(ctx, `SELECT `+eventCols+` FROM events WHERE id = $1`, d.EventID))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET lease_until = $1, manual = true WHERE id = $2`, until, id); err != nil {
			return err
		}
		c = &herald.Claim{Delivery: d, Event: e, Channel: ch}
		return nil
	})
	return c, err
}

// RecoverDeliveries re-queues a channel's failed deliveries since a time.
func (s *Store) RecoverDeliveries(ctx context.Context, tenantID, channelID string, since, now time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var enabled bool
		var reason string
		err := tx.QueryRow(ctx, `SELECT enabled, disabled_reason FROM channels WHERE tenant_id = $1 AND id = $2`, tenantID, channelID).Scan(&enabled, &reason)
		if err != nil {
			return mapErr(err)
		}
		if !enabled {
			return &herald.ConflictError{Detail: fmt.Sprintf("channel is disabled (%s); enable it with PATCH {\"enabled\": true} before recovering", reason)}
		}
		tag, err := tx.Exec(ctx, `UPDATE deliveries SET status = 'pending', next_attempt_at = $1, retry_base = attempts, manual = false, updated_at = $1
			WHERE tenant_id = $2 AND channel_id = $3 AND status = 'failed' AND created_at >= $4`, now, tenantID, channelID, since)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return nil
	})
	if err == nil && n > 0 {
		s.notify()
	}
	return int(n), err
}
