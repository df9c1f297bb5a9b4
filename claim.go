package herald

import "time"

// PickClaims decides which due deliveries a claim takes, the same way in
// every store: in the candidates' order, up to p.Limit, within each
// channel's free in-flight slots (busy counts the leases it has now) and
// its rate schedule (rateNext holds each rate-limited channel's next free
// slot and is advanced in place). A delivery whose channel is missing from
// channels was deleted: it is taken so the dispatcher can fail it.
func PickClaims(p ClaimParams, cands []Delivery, channels map[string]*Channel, busy map[string]int, rateNext map[string]time.Time) []Claim {
	var picked []Claim
	for _, d := range cands {
		if len(picked) >= p.Limit {
			break
		}
		ch := channels[d.ChannelID]
		c := Claim{Delivery: d, Channel: ch, LeaseUntil: p.Now.Add(p.LeaseSlack + 15*time.Second)}
		if ch != nil {
			if busy[ch.ID] >= ch.MaxInFlight {
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
		}
		picked = append(picked, c)
	}
	return picked
}
