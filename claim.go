package herald

import (
	"fmt"
	"time"
)

// RetryConflict says why a delivery cannot be retried by hand now, or
// returns nil. leaseUntil is its current lease, if it has one. A manual
// attempt that a crash cut off (pending, leased once, never rescheduled)
// may be retried once its lease has passed.
func RetryConflict(d *Delivery, leaseUntil *time.Time, now time.Time) error {
	if leaseUntil != nil && leaseUntil.After(now) {
		return &ConflictError{Detail: "an attempt of this delivery is in progress; wait for it to finish"}
	}
	if d.Status != StatusPending || (d.Manual && d.NextAttemptAt == nil) {
		return nil
	}
	when := "soon"
	if d.NextAttemptAt != nil {
		when = "at " + d.NextAttemptAt.Format(time.RFC3339)
	}
	return &ConflictError{Detail: fmt.Sprintf("delivery is still pending; its next automatic attempt is %s", when)}
}

// ChannelRoom is what a channel can give a claim: deliveries for its Free
// in-flight slots, and Queue more beyond them for the dispatcher to queue.
// Claims take every channel's free slots before any queue, so that one
// channel's queue never takes the free slots of the channels after it
// (when the first channel's queue filled the claim, a delivery to 100
// channels started one channel per claim).
type ChannelRoom struct{ Free, Queue int }

// RoomOf is the room of a channel allowed maxInFlight requests with busy
// in flight, which may queue queue deliveries beyond its slots unless it
// is rate-limited (a rate schedule is booked by claims, slot by slot).
func RoomOf(maxInFlight, busy, queue int, rated bool) ChannelRoom {
	if rated {
		queue = 0
	}
	free := max(maxInFlight-busy, 0)
	return ChannelRoom{Free: free, Queue: max(maxInFlight+queue-busy-free, 0)}
}

// PickClaims decides which due deliveries a claim takes, the same way in
// every store: in the candidates' order, up to p.Limit, within each
// channel's free in-flight slots (busy is its requests in flight now; see
// ClaimParams.Busy) plus p.QueueOf for a channel without a rate limit,
// and within its rate schedule (rateNext holds each rate-limited
// channel's next free slot and is advanced in place). A delivery whose
// channel is missing from channels was deleted: it is taken so the
// dispatcher can fail it.
func PickClaims(p ClaimParams, cands []Delivery, channels map[string]*Channel, busy map[string]int, rateNext map[string]time.Time) []Claim {
	var picked []Claim
	for _, d := range cands {
		if len(picked) >= p.Limit {
			break
		}
		ch := channels[d.ChannelID]
		c := Claim{Delivery: d, Channel: ch, LeaseUntil: p.Now.Add(p.LeaseSlack + 15*time.Second)}
		if ch != nil {
			queued := busy[ch.ID] >= ch.MaxInFlight
			if queued && (ch.RateLimitPerSec > 0 || busy[ch.ID] >= ch.MaxInFlight+p.QueueOf(ch.ID)) {
				continue
			}
			start := p.Now
			if ch.RateLimitPerSec > 0 {
				sendAt, following := RateSlot(rateNext[ch.ID], p.Now, ch.RateLimitPerSec)
				if sendAt.Sub(p.Now) > p.MaxRateWait() {
					continue
				}
				rateNext[ch.ID] = following
				if sendAt.After(p.Now) {
					c.SendAt, start = sendAt, sendAt
				}
			}
			busy[ch.ID]++
			c.LeaseUntil = start.Add(ch.Timeout() + p.LeaseSlack)
			if queued {
				c.LeaseUntil = c.LeaseUntil.Add(p.QueueWait)
			}
		}
		picked = append(picked, c)
	}
	return picked
}
