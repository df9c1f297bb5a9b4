package dispatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/heraldhq/herald"
)

// With a store only this process uses (SQLite), the publisher hands new
// deliveries straight to the dispatcher: they are written leased, queued
// here per channel and sent without a claim, which would cost a write, a
// scan and reading each event back. The store stays the record: a
// delivery it holds pending is sent again after a crash, whatever was
// queued.
//
// A channel's queue takes new deliveries only while the store holds none
// of the channel's due ones (its backlog), so a handoff never overtakes
// deliveries that waited in the store for long. A full queue turns the
// backlog on; a claim that finds the channel's due deliveries all taken
// turns it off.
//
// A backlog is claimed into the same queues: claims may queue up to
// queuePerClaim deliveries of a channel beyond its free slots, so a channel
// allowed few requests in flight drains its backlog at a claim per batch
// instead of a claim per freed slot. A queue running low is topped up
// before it runs dry, and queued deliveries keep starting while a claim
// runs, so the channel's slots stay busy while the claim waits for the
// writer.
//
// A channel may queue queuePerSlot deliveries per in-flight slot, or what
// it sent in the last queueSeconds if that is more: a burst to a channel
// that keeps up stays in memory, and one whose requests hang cannot take
// the shared budget from the others.
//
// With a store several processes share (PostgreSQL) nothing is handed
// off, as the process that publishes need not be the one that delivers;
// claims queue as above, but a queued delivery's lease ends: claims queue
// what the channel's recent rate starts well within sharedQueueWait, and a
// delivery that waited too long for its lease to cover its request is
// released instead. In-flight limits hold across processes because a
// store queues only for a channel no other process holds leases of, and
// the queue's leases then keep the others off it (see
// herald.ClaimParams.Queue); the dispatcher counts what it holds (held)
// for the store to tell its own leases from the others'.

// ChannelSource reads the channels of handed-off deliveries.
type ChannelSource interface {
	ConfigVersion(ctx context.Context) (int64, error)
	GetChannel(ctx context.Context, tenantID, id string) (*herald.Channel, error)
}

// Bounds of the handoff queues; past them new deliveries wait in the store.
const (
	queuePerSlot   = 64       // queued deliveries per in-flight slot of a channel
	maxQueuedBytes = 64 << 20 // memory queued across all channels (see queueCost)
	// queueSeconds lets a channel queue what it sent in that many
	// seconds, when that is more than queuePerSlot allows: a burst to a
	// fast channel stays in memory instead of being claimed back from
	// the store, while a channel whose requests hang keeps a short queue.
	queueSeconds = 30
	// rateWindow is the shortest time a send rate is measured over: short
	// enough that a burst's queue grows before it overflows the
	// queuePerSlot bound.
	rateWindow = 100 * time.Millisecond
	// queuePerClaim is how many deliveries claims may queue per channel,
	// while less than half of maxQueuedBytes is queued: the rest is
	// left to handoffs. With 128 a channel of 64 slots ran its queue dry
	// between claims while the writer was busy; 512 drains a backlog
	// about 1.6 times as fast (docs/benchmarks-log.md).
	queuePerClaim = 512
	// sharedQueueWait is how much longer than a request's own lease a
	// delivery queued with a shared store is leased: how long after a
	// crash of this process its queue waits for other processes.
	sharedQueueWait = 30 * time.Second
	// sharedQueueSeconds bounds what a claim queues with a shared store:
	// what the channel sent in that many seconds, so that the queue starts
	// well within sharedQueueWait.
	sharedQueueSeconds = 10
	// sharedVersionAge is how long a shared store's config version is
	// taken as current for queued deliveries: reading it for each one
	// cost a tenth of delivery's CPU (a query each), and a channel
	// changed meanwhile applies to queued deliveries this much later.
	sharedVersionAge = 100 * time.Millisecond
)

// queueCost is the memory a queued delivery holds: its claim, and its
// share of its event's data, which all of the event's deliveries share.
func queueCost(e *herald.Event, shares int) int {
	const claimSize = 512
	return claimSize + len(e.Data)/max(shares, 1)
}

// queued is a delivery waiting for a slot: handed off, or claimed.
//
// It holds the claim by pointer: a burst's queue holds tens of thousands,
// and as values (400 bytes each) growing and prepending to it copied
// megabytes at a time.
type queued struct {
	c       *herald.Claim
	cost    int
	claimed bool
}

// lanes counts each channel's requests in flight and queues its handed-off
// deliveries. Its fields are guarded by mu.
type lanes struct {
	mu      sync.Mutex
	byCh    map[string]*lane
	waiting map[*lane]bool // lanes with a queue
	bytes   int            // memory queued or reserved (see queueCost)
	starved bool           // a queue waits for a slot of the global limit
	running bool           // Run has begun: queues may start
	closed  bool
	shared  bool // other processes may claim from the store: see above

	// gen counts changes that may leave due deliveries in the store that
	// no claim has seen; a claim clears only what was set before it began.
	gen        uint64
	dirty      bool // due deliveries of unknown channels may be in the store
	dirtyGen   uint64
	backlogged map[*lane]bool // lanes with a backlog

	cacheVersion int64
	cache        map[string]*herald.Channel // by ID; nil for a missing channel
	versionRead  time.Time                  // when cacheVersion was read (shared stores)
}

type lane struct {
	id       string
	max      int  // the channel's in-flight limit, as last read
	rated    bool // the channel has a rate limit: claims queue none of it
	busy     int  // requests in flight
	held     int  // claimed and not yet completed or released (shared stores only)
	reserved int  // handed off by a publish still being written
	queue    []queued
	backlog  bool
	setGen   uint64 // gen when backlog was last turned on
	refill   bool   // the running claim tops up the queue (beginClaim)

	// The channel's requests ended per second, measured over the last
	// window of rateWindow or more that ended with a request; sent counts
	// those ended since since.
	rate  int
	sent  int
	since time.Time
}

// queueLimit is how many deliveries l may queue; mu held.
func (l *lane) queueLimit() int {
	return max(queuePerSlot*max(l.max, 1), l.rate*queueSeconds)
}

// ended counts a request of l that ended at now; mu held.
func (l *lane) ended(now time.Time) {
	l.sent++
	if d := now.Sub(l.since); d >= rateWindow {
		l.rate = int(float64(l.sent) / d.Seconds())
		l.sent, l.since = 0, now
	}
}

func newLanes(shared bool) *lanes {
	return &lanes{byCh: map[string]*lane{}, waiting: map[*lane]bool{}, backlogged: map[*lane]bool{}, dirty: true, gen: 1, dirtyGen: 1, shared: shared}
}

// laneOf returns ch's lane, made if new: a new lane has a backlog unless
// the store is known to hold no due deliveries of unknown channels.
func (ls *lanes) laneOf(ch *herald.Channel) *lane {
	l := ls.byCh[ch.ID]
	if l == nil {
		l = &lane{id: ch.ID}
		ls.byCh[ch.ID] = l
		if ls.dirty {
			ls.setBacklog(l)
		}
	}
	l.max, l.rated = ch.MaxInFlight, ch.RateLimitPerSec > 0
	return l
}

// claimRoom is how many deliveries of l a claim may take beyond its
// free slots, with q allowed per lane; mu held.
func (ls *lanes) claimRoom(l *lane, q int) int {
	switch {
	case l.rated:
		return 0
	case ls.shared:
		return min(q, max(l.max, l.rate*sharedQueueSeconds))
	}
	return q
}

// claimQueue is what a claim may queue per lane now; mu held.
func (ls *lanes) claimQueue() int {
	if ls.bytes >= maxQueuedBytes/2 {
		return 0
	}
	return queuePerClaim
}

func (ls *lanes) setBacklog(l *lane) {
	ls.gen++
	l.setGen = ls.gen
	l.backlog = true
	ls.backlogged[l] = true
}

func (ls *lanes) clearBacklog(l *lane) {
	l.backlog = false
	delete(ls.backlogged, l)
}

// markDirty notes that the store may hold due deliveries no lane knows of.
func (ls *lanes) markDirty() {
	ls.mu.Lock()
	ls.gen++
	ls.dirty, ls.dirtyGen = true, ls.gen
	ls.mu.Unlock()
}

// drained reports whether a claim now would find nothing it could take:
// the store holds no due deliveries but those of channels with a backlog
// whose slots are all taken (with no room to queue more) or whose queue
// goes first. Then a freed slot needs no claim (a channel that hangs
// keeps its backlog for long).
func (ls *lanes) drained() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.dirty {
		return false
	}
	q := ls.claimQueue()
	for l := range ls.backlogged {
		if (len(l.queue) == 0 || l.wantsRefill()) && l.busy+len(l.queue) < l.max+ls.claimRoom(l, q) {
			return false
		}
	}
	return true
}

// beginClaim sets the claim's parameters from the lanes: the busy
// counts it is to respect, how many it may queue per channel and for how
// long and, with a shared store, the deliveries held and each channel's
// own queue bound (claimRoom). A lane whose queue is long enough is left
// be (the claim skips scanning its leased rows); one with a backlog whose
// queue runs low counts its queue as busy and is claimed for ahead, so
// that it does not run dry while the claim waits for the store.
func (ls *lanes) beginClaim(p *herald.ClaimParams) (gen uint64) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	p.Queue = ls.claimQueue()
	p.Busy = make(map[string]int, len(ls.byCh))
	p.QueueWait = herald.QueueLease // until the process ends: SQLite clears leases at start
	if ls.shared {
		p.QueueWait = sharedQueueWait
		p.Held = make(map[string]int, len(ls.byCh))
		p.QueueFor = make(map[string]int, len(ls.byCh))
	}
	for id, l := range ls.byCh {
		l.refill = false
		switch {
		case l.wantsRefill():
			l.refill = true
			p.Busy[id] = l.busy + len(l.queue)
		case len(l.queue) > 0:
			p.Busy[id] = max(l.busy, l.max+p.Queue)
		case l.busy > 0:
			p.Busy[id] = l.busy
		}
		if ls.shared {
			if l.held > 0 {
				p.Held[id] = l.held
			}
			if room := ls.claimRoom(l, p.Queue); room < p.Queue {
				p.QueueFor[id] = room
			}
		}
	}
	return ls.gen
}

// wantsRefill reports whether a claim should top up l's queue: it has a
// backlog and what is queued would last less than a claim's turnaround;
// mu held.
func (l *lane) wantsRefill() bool {
	return l.backlog && len(l.queue) > 0 && len(l.queue) < queuePerClaim/2
}

// endClaim counts the claimed deliveries that fit their channels' free
// slots, and room more in flight across channels, as busy and returns
// them, to be started. It queues the others ahead of anything handed off
// meanwhile, as they are older, but behind what a topped-up queue held.
// It learns from the claim which channels still have due deliveries in
// the store: those whose free slots and queue room it filled. full means
// it was cut off by its limit (or failed). mu held.
func (ls *lanes) endClaim(p herald.ClaimParams, gen uint64, claims []herald.Claim, full bool, room int) (start []herald.Claim) {
	taken := map[*lane]int{}
	extra := map[*lane][]queued{}
	shares := map[string]int{} // an event's deliveries queued together
	for i := range claims {
		c := &claims[i]
		if c.Channel == nil {
			start = append(start, *c)
			continue
		}
		l := ls.laneOf(c.Channel)
		taken[l]++
		if ls.shared {
			l.held++
		}
		if l.busy < l.max && len(extra[l]) == 0 && !l.refill && room > 0 {
			l.busy++
			room--
			start = append(start, *c)
			continue
		}
		extra[l] = append(extra[l], queued{c: c, claimed: true})
		shares[c.Event.ID]++
	}
	for l, q := range extra {
		for i := range q {
			q[i].cost = queueCost(&q[i].c.Event, shares[q[i].c.Event.ID])
			ls.bytes += q[i].cost
		}
		if l.refill {
			l.queue = append(l.queue, q...)
		} else {
			l.queue = append(q, l.queue...)
		}
		ls.waiting[l] = true
	}
	if !full && ls.dirtyGen <= gen {
		ls.dirty = false
	}
	// Only lanes with a backlog can lose it, and only those a claim filled
	// can gain one.
	for l := range ls.backlogged {
		taken[l] += 0
	}
	for l, n := range taken {
		free := l.max + ls.claimRoom(l, p.Queue) - p.Busy[l.id]
		switch {
		case free <= 0: // the claim could not look
		case n >= free || (ls.shared && n > 0):
			// (With a shared store, other processes' leases may have
			// left less free than that: a lane that took any looks
			// again.)
			ls.setBacklog(l)
		case !full && l.setGen <= gen:
			ls.clearBacklog(l)
		}
	}
	return start
}

// channel returns a channel as of the store's current config version (a
// shared store's as read within sharedVersionAge), nil if it no longer
// exists.
func (d *Dispatcher) channel(ctx context.Context, tenantID, id string) (*herald.Channel, error) {
	ls := d.lanes
	fresh := false
	if ls.shared { // set at New only
		ls.mu.Lock()
		fresh = ls.cache != nil && time.Since(ls.versionRead) < sharedVersionAge
		ls.mu.Unlock()
	}
	var v int64
	var read time.Time
	if !fresh {
		read = time.Now()
		var err error
		if v, err = d.cfg.Channels.ConfigVersion(ctx); err != nil {
			return nil, err
		}
	}
	ls.mu.Lock()
	if !fresh {
		if ls.cache == nil || v > ls.cacheVersion {
			ls.cache, ls.cacheVersion = map[string]*herald.Channel{}, v
		}
		if read.After(ls.versionRead) {
			ls.versionRead = read
		}
	}
	v = ls.cacheVersion
	ch, ok := ls.cache[id]
	ls.mu.Unlock()
	if ok {
		return ch, nil
	}
	// Read after the version: what is read is at least that new.
	ch, err := d.cfg.Channels.GetChannel(ctx, tenantID, id)
	if errors.Is(err, herald.ErrNotFound) {
		ch, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	ls.mu.Lock()
	if ls.cacheVersion == v {
		ls.cache[id] = ch
	}
	ls.mu.Unlock()
	return ch, nil
}

// Reserve takes e's deliveries to those of channelIDs it can queue and
// returns their channels (nil where the delivery goes to the store as
// usual; all nil as a nil slice). The caller writes the taken ones leased
// and passes them to Handoff after the commit, or to Unreserve if the
// write fails. wake says the dispatcher is to look at the store after the
// commit: it is false when every delivery not taken joins the backlog of a
// channel, which is claimed as the channel's slots free. Without a local
// store it takes none.
func (d *Dispatcher) Reserve(ctx context.Context, e *herald.Event, channelIDs []string) (chs []*herald.Channel, wake bool) {
	if !d.cfg.Local {
		return nil, true
	}
	chs = make([]*herald.Channel, len(channelIDs))
	cands := 0
	for i, id := range channelIDs {
		ch, err := d.channel(ctx, e.TenantID, id)
		if err != nil || ch == nil || !ch.Enabled || ch.RateLimitPerSec > 0 {
			wake = true // a rate schedule is kept by claims
			continue
		}
		chs[i] = ch
		cands++
	}
	if cands == 0 {
		return nil, wake
	}
	cost := queueCost(e, cands)
	ls := d.lanes
	ls.mu.Lock()
	defer ls.mu.Unlock()
	n := 0
	for i, ch := range chs {
		if ch == nil {
			continue
		}
		l := ls.laneOf(ch)
		switch {
		case ls.closed:
			chs[i], wake = nil, true
		case l.backlog:
			// Set again, so that a claim already running, which cannot
			// see this delivery, does not clear it. With nothing of the
			// channel's running or queued, no freed slot will bring a
			// claim: wake one.
			ls.setBacklog(l)
			chs[i] = nil
			wake = wake || (l.busy == 0 && len(l.queue) == 0)
		case len(l.queue)+l.reserved >= l.queueLimit():
			ls.setBacklog(l)
			d.flips.Add(1)
			chs[i] = nil
		case ls.bytes+(n+1)*cost > maxQueuedBytes:
			// The channel itself may have slots free: claim for it.
			ls.setBacklog(l)
			d.flips.Add(1)
			chs[i], wake = nil, true
		default:
			l.reserved++
			n++
		}
	}
	if n == 0 {
		return nil, wake
	}
	ls.bytes += n * queueCost(e, n)
	return chs, wake
}

// Unreserve gives back what Reserve took for e when its write failed or
// wrote nothing.
func (d *Dispatcher) Unreserve(e *herald.Event, chs []*herald.Channel) {
	ls := d.lanes
	ls.mu.Lock()
	defer ls.mu.Unlock()
	n := 0
	for _, ch := range chs {
		if ch != nil {
			ls.byCh[ch.ID].reserved--
			n++
		}
	}
	ls.bytes -= n * queueCost(e, n)
}

// Handoff queues reserved deliveries, now stored, and starts what fits.
func (d *Dispatcher) Handoff(claims []herald.Claim) {
	ls := d.lanes
	shares := map[string]int{} // an event's deliveries handed off together
	for i := range claims {
		shares[claims[i].Event.ID]++
	}
	var release []string
	ls.mu.Lock()
	for i := range claims {
		c := &claims[i]
		l := ls.byCh[c.Channel.ID]
		l.reserved--
		cost := queueCost(&c.Event, shares[c.Event.ID])
		if ls.closed {
			ls.bytes -= cost
			release = append(release, c.Delivery.ID)
			continue
		}
		l.queue = append(l.queue, queued{c: c, cost: cost})
		ls.waiting[l] = true
	}
	for i := range claims {
		if l := ls.byCh[claims[i].Channel.ID]; ls.waiting[l] {
			d.pump(l)
		}
	}
	ls.mu.Unlock()
	d.releaseIDs(release)
}

// pumpAll starts queued deliveries of every lane as slots allow; mu held.
func (d *Dispatcher) pumpAll() {
	d.lanes.starved = false
	for l := range d.lanes.waiting {
		d.pump(l)
	}
}

// pump starts l's queued deliveries while the channel and the global limit
// have free slots; mu held.
func (d *Dispatcher) pump(l *lane) {
	ls := d.lanes
	if ls.closed || !ls.running {
		return
	}
	for len(l.queue) > 0 && l.busy < l.max {
		if d.inflight.Load() >= int64(d.cfg.Concurrency) {
			ls.starved = true
			return
		}
		q := l.queue[0]
		l.queue[0] = queued{}
		l.queue = l.queue[1:]
		ls.bytes -= q.cost
		c := q.c
		l.busy++
		if q.claimed {
			d.claimed.Add(1)
		} else {
			d.handedOff.Add(1)
		}
		claimed := q.claimed
		d.start(l, func(ctx context.Context, free func()) {
			d.deliverQueued(ctx, *c, free)
			if claimed {
				d.unhold(l)
			}
		})
	}
	if len(l.queue) == 0 {
		l.queue = nil
		delete(ls.waiting, l)
	}
}

// deliverQueued sends with the channel as it is now: it may have changed
// while the delivery waited.
func (d *Dispatcher) deliverQueued(ctx context.Context, c herald.Claim, free func()) {
	ch, err := d.channel(ctx, c.Delivery.TenantID, c.Delivery.ChannelID)
	if err != nil {
		d.cfg.Logger.Error("read channel of a queued delivery", "delivery", c.Delivery.ID, "err", err)
		d.release(c)
		return
	}
	if ch != nil && ch.Enabled && ch.RateLimitPerSec > 0 {
		d.release(c) // rate-limited since: a claim schedules it
		return
	}
	if d.lanes.shared && ch != nil && c.LeaseUntil.Sub(d.cfg.Clock.Now()) < ch.Timeout()+d.cfg.LeaseSlack/2 {
		// Queued with a shared store for longer than the claim meant: its
		// lease no longer covers the request. Released now, before the
		// lease ends, it is due again for any process.
		d.release(c)
		return
	}
	c.Channel = ch
	d.deliver(ctx, c, free)
}

// freeSlot ends a request of lane l (nil for a deleted channel's) and
// starts what waited for it.
func (d *Dispatcher) freeSlot(l *lane) {
	now := time.Now() // read outside the lock every request ends under
	ls := d.lanes
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l != nil {
		l.busy--
		l.ended(now)
		if ls.waiting[l] {
			d.pump(l)
		}
	}
	if ls.starved {
		d.pumpAll()
	}
}

// closeLanes stops handoffs and releases what is queued to the store.
func (d *Dispatcher) closeLanes() {
	ls := d.lanes
	var release []string
	ls.mu.Lock()
	ls.closed = true
	for l := range ls.waiting {
		for _, q := range l.queue {
			release = append(release, q.c.Delivery.ID)
			ls.bytes -= q.cost
			if q.claimed && ls.shared {
				l.held--
			}
		}
		l.queue = nil
	}
	clear(ls.waiting)
	ls.mu.Unlock()
	d.releaseIDs(release)
}

// acquire counts a request outside the loop (a manual attempt) in its
// channel's lane, so claims leave it its slot.
func (d *Dispatcher) acquire(ch *herald.Channel) *lane {
	if ch == nil {
		return nil
	}
	d.lanes.mu.Lock()
	defer d.lanes.mu.Unlock()
	l := d.lanes.laneOf(ch)
	l.busy++
	return l
}

// unhold counts a claimed delivery of lane l (nil for a deleted channel's)
// as completed or released: its lease is no longer this dispatcher's.
func (d *Dispatcher) unhold(l *lane) {
	if l == nil || !d.lanes.shared {
		return
	}
	d.lanes.mu.Lock()
	l.held--
	d.lanes.mu.Unlock()
}
