// Package dispatch delivers pending deliveries: it claims due ones with a
// lease, sends them, and records each attempt with the delivery's new state
// as the channel's retry policy decides.
package dispatch

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/channel"
)

// Config configures a Dispatcher.
type Config struct {
	Store  herald.DeliveryStore
	Sender *channel.Sender
	Clock  herald.Clock
	Logger *slog.Logger
	// PollInterval is how often the queue is checked without a wake-up;
	// retries come due this way.
	PollInterval time.Duration
	// Concurrency bounds requests in flight across all channels.
	Concurrency int
	// ClaimBatch bounds one claim (defaultClaimBatch if not set).
	ClaimBatch int
	// LeaseSlack is added to a channel's timeout to make a lease.
	LeaseSlack time.Duration
	// ShutdownGrace is how long in-flight requests may finish after Run's
	// context ends; those still running then are cut off and released.
	ShutdownGrace time.Duration
	// Jitter returns a number in [0,1) for retry jitter.
	Jitter func() float64
	// Local says only this process uses Store (SQLite): the dispatcher
	// takes deliveries handed off at publish (see Reserve) and its queued
	// deliveries are leased until the process ends. Otherwise several
	// processes may share the store (PostgreSQL): queued deliveries are
	// leased for sharedQueueWait and queued only while the channel's
	// recent rate can start them within it.
	Local bool
	// Channels reads the channels of queued deliveries, which apply
	// changes made while they waited.
	Channels ChannelSource
}

// Dispatcher runs the delivery loop.
type Dispatcher struct {
	cfg      Config
	wake     chan struct{}
	freed    chan struct{}
	inflight atomic.Int64

	completer *completer
	lanes     *lanes

	// Requests run under workCtx, which outlives Run's context by the
	// shutdown grace; wg counts them.
	workCtx    context.Context
	cancelWork context.CancelFunc
	wg         sync.WaitGroup
	tasks      chan task // to idle workers (see work)

	handedOff, claimed, flips atomic.Int64
}

// Stats counts what the dispatcher started since it was made.
type Stats struct {
	HandedOff int64 // deliveries sent as handed off at publish
	Claimed   int64 // deliveries sent as claimed from the store
	Backlogs  int64 // times a full handoff queue sent new deliveries to the store
}

// Stats returns the dispatcher's counts.
func (d *Dispatcher) Stats() Stats {
	return Stats{HandedOff: d.handedOff.Load(), Claimed: d.claimed.Load(), Backlogs: d.flips.Load()}
}

// New returns a Dispatcher with defaults filled in.
func New(cfg Config) *Dispatcher {
	if cfg.Clock == nil {
		cfg.Clock = herald.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 512
	}
	if cfg.ClaimBatch <= 0 {
		cfg.ClaimBatch = defaultClaimBatch
	}
	if cfg.LeaseSlack <= 0 {
		cfg.LeaseSlack = 30 * time.Second
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	d := &Dispatcher{
		cfg:       cfg,
		wake:      make(chan struct{}, 1),
		freed:     make(chan struct{}, 1),
		completer: newCompleter(cfg.Store),
		tasks:     make(chan task),
	}
	d.lanes = newLanes(!cfg.Local)
	d.workCtx, d.cancelWork = context.WithCancel(context.Background())
	return d
}

// Wake makes the loop look for due deliveries now.
func (d *Dispatcher) Wake() {
	d.lanes.markDirty()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then lets in-flight requests finish within
// the shutdown grace and releases the rest.
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.cancelWork()
	d.lanes.mu.Lock()
	d.lanes.running = true
	d.pumpAll()
	d.lanes.mu.Unlock()
	ticker := time.NewTicker(d.cfg.PollInterval)
	defer ticker.Stop()
	for ctx.Err() == nil {
		n, limit := d.claimAndStart(ctx)
		if n > 0 && n == limit {
			continue // a full claim: more may be due
		}
		d.waitForWork(ctx, ticker.C)
	}
	d.closeLanes()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.ShutdownGrace):
		d.cfg.Logger.Warn("shutdown grace over; releasing in-flight deliveries", "in_flight", d.inflight.Load())
		d.cancelWork()
		<-done
	}
}

// waitForWork returns when a claim may find something: on a wake-up, a
// tick (retries come due), or finished requests, unless the store is
// known to hold nothing due beyond what is queued.
func (d *Dispatcher) waitForWork(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			return
		case <-tick:
			return
		case <-d.freed:
			if d.lanes.drained() {
				continue
			}
			// A finished request frees one slot; claiming for each alone
			// would cost a write per delivery. Let a few more finish.
			select {
			case <-ctx.Done():
			case <-d.wake:
			case <-time.After(freedDebounce):
			}
			return
		}
	}
}

// timeoutSettle is how long a slot whose request timed out stays taken
// after the result is stored.
const timeoutSettle = 20 * time.Millisecond

// defaultClaimBatch is Config.ClaimBatch when it is not set.
const defaultClaimBatch = 128

// freedDebounce is how long the loop lets finished requests accumulate
// before claiming for their slots.
const freedDebounce = 2 * time.Millisecond

// claimAndStart claims up to the free slots and starts a request for each;
// it returns how many it claimed and how many it asked for.
func (d *Dispatcher) claimAndStart(ctx context.Context) (n, limit int) {
	free := d.cfg.Concurrency - int(d.inflight.Load())
	if free <= 0 {
		return 0, 0
	}
	limit = min(free, d.cfg.ClaimBatch)
	p := herald.ClaimParams{Now: d.cfg.Clock.Now(), Limit: limit, LeaseSlack: d.cfg.LeaseSlack}
	gen := d.lanes.beginClaim(&p)
	claims, err := d.cfg.Store.ClaimDeliveries(ctx, p)
	if err != nil && ctx.Err() == nil {
		d.cfg.Logger.Error("claim deliveries", "err", err)
	}
	d.lanes.mu.Lock()
	room := d.cfg.Concurrency - int(d.inflight.Load())
	start := d.lanes.endClaim(p, gen, claims, err != nil || len(claims) == limit, room)
	for _, c := range start {
		var l *lane
		if c.Channel != nil {
			l = d.lanes.byCh[c.Channel.ID]
		}
		d.claimed.Add(1)
		d.start(l, func(ctx context.Context, free func()) {
			d.deliver(ctx, c, free)
			d.unhold(l)
		})
	}
	d.pumpAll()
	d.lanes.mu.Unlock()
	return len(claims), limit
}

// start runs fn as one request in flight of lane l (nil without lanes or
// for a deleted channel); fn calls free once its slot may be used again,
// and it is freed when fn returns otherwise.
func (d *Dispatcher) start(l *lane, fn func(ctx context.Context, free func())) {
	d.inflight.Add(1)
	d.wg.Add(1)
	t := task{l: l, fn: fn}
	select {
	case d.tasks <- t: // an idle worker takes it
	default:
		go d.work(t)
	}
}

// A request runs on a worker goroutine that then waits workerIdle for the
// next: a request's calls grow a goroutine's stack to tens of KiB, and
// with a goroutine per request, copying stacks as they grew took 3% of a
// burst's CPU.
const workerIdle = 10 * time.Second

// task is one request for a worker: fn, holding a slot of lane l.
type task struct {
	l  *lane
	fn func(ctx context.Context, free func())
}

// work runs t and the tasks that come while it waits, until none has
// come for workerIdle or the dispatcher has stopped.
func (d *Dispatcher) work(t task) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for ok := true; ok; t, ok = d.next(idle) {
		d.run(t)
	}
}

// idleStack is what a waiting worker keeps of its stack in use: the
// collector halves the stack of a goroutine that uses less than a quarter
// of it, and a worker's next request then grew it back, copying it.
const idleStack = 8 << 10

// next waits for a task for a worker; false when the worker is to end.
//
//go:noinline
func (d *Dispatcher) next(idle *time.Timer) (task, bool) {
	var hold [idleStack]byte
	keepStack(&hold)
	idle.Reset(workerIdle)
	select {
	case t := <-d.tasks:
		return t, true
	case <-idle.C:
	case <-d.workCtx.Done():
	}
	return task{}, false
}

//go:noinline
func keepStack(*[idleStack]byte) {}

// run runs t; its slot is freed when fn calls free, or when fn returns.
func (d *Dispatcher) run(t task) {
	defer d.wg.Done()
	freed := false
	free := func() {
		if !freed {
			freed = true
			d.slotFreed(t.l)
		}
	}
	defer free()
	t.fn(d.workCtx, free)
}

func (d *Dispatcher) slotFreed(l *lane) {
	d.inflight.Add(-1)
	d.freeSlot(l)
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

// deliver makes one automatic attempt and records it.
func (d *Dispatcher) deliver(ctx context.Context, c herald.Claim, free func()) {
	if c.Channel == nil || !c.Channel.Enabled {
		d.finishWithoutAttempt(ctx, c)
		return
	}
	// The claim scheduled this delivery for the channel's next rate slot;
	// its lease covers the wait.
	if wait := c.SendAt.Sub(d.cfg.Clock.Now()); !c.SendAt.IsZero() && wait > 0 {
		select {
		case <-ctx.Done():
			d.release(c)
			return
		case <-time.After(wait):
		}
	}
	comp, sent := d.attempt(ctx, c, herald.TriggerAuto)
	if !sent {
		d.release(c)
		return
	}
	if d.cfg.Local && comp.Attempt.StatusCode != 0 && !d.completer.behind() {
		// The receiver is done with it; its lease keeps the delivery from
		// being claimed while the result is written. A request that got no
		// answer (a timeout) may still be running there, so it keeps its
		// slot. While the store falls behind recording results, the slot
		// waits for this one: sending on would pile up goroutines (and
		// their stacks) waiting for the store without bound. With a shared
		// store the slot waits for the result in any case: other
		// processes count the lease as in flight, and what a crash sends
		// twice stays within the channel's in-flight limit.
		free()
	}
	if err := d.completer.complete(comp); err != nil {
		// The lease expires and the delivery is attempted again: at least
		// once. A queued delivery's lease is long: drop it now.
		d.cfg.Logger.Error("record attempt", "delivery", c.Delivery.ID, "err", err)
		d.release(c)
	}
	if comp.Attempt.ErrorClass == herald.ErrClassTimeout {
		// The receiver may not have noticed yet that the connection it
		// hung on is closed; a queued delivery would start at once.
		select {
		case <-ctx.Done():
		case <-time.After(timeoutSettle):
		}
	}
	if comp.DisableChannel != "" {
		d.cfg.Logger.Warn("channel disabled", "channel", c.Channel.ID, "reason", comp.DisableChannel)
	}
	if comp.DeleteChannel {
		d.cfg.Logger.Info("REST Hook deleted: its target answered 410 Gone", "channel", c.Channel.ID)
	}
}

func (d *Dispatcher) finishWithoutAttempt(ctx context.Context, c herald.Claim) {
	reason := "channel deleted"
	if c.Channel != nil {
		reason = "channel disabled: " + c.Channel.DisabledReason
	}
	dl := c.Delivery
	dl.Status, dl.NextAttemptAt, dl.LastError, dl.UpdatedAt = herald.StatusFailed, nil, reason, d.cfg.Clock.Now()
	if err := d.completer.complete(herald.Completion{Delivery: dl}); err != nil {
		d.cfg.Logger.Error("fail delivery", "delivery", dl.ID, "err", err)
	}
}

func (d *Dispatcher) release(c herald.Claim) {
	d.releaseIDs([]string{c.Delivery.ID})
}

// releaseIDs makes deliveries due again for a claim to take.
func (d *Dispatcher) releaseIDs(ids []string) {
	if len(ids) == 0 {
		return
	}
	if err := d.cfg.Store.ReleaseDeliveries(context.Background(), ids); err != nil {
		d.cfg.Logger.Error("release deliveries", "deliveries", len(ids), "err", err)
	}
	d.Wake()
}

// Attempt makes one attempt outside the loop (manual retry, channel test)
// and records it: success ends the delivery as succeeded, anything else as
// failed; it is never retried automatically.
func (d *Dispatcher) Attempt(ctx context.Context, c herald.Claim, trigger string) (herald.Completion, error) {
	if l := d.acquire(c.Channel); l != nil {
		defer d.freeSlot(l)
	}
	comp, sent := d.attempt(ctx, c, trigger)
	if !sent {
		comp.Delivery.Status = herald.StatusFailed
		comp.Delivery.LastError = "attempt cut off before an answer; retry again"
	}
	err := d.completer.complete(comp)
	return comp, err
}

// attempt sends and decides; sent is false when the request was cut off by
// shutdown before any answer, which is not an attempt.
func (d *Dispatcher) attempt(ctx context.Context, c herald.Claim, trigger string) (herald.Completion, bool) {
	started := d.cfg.Clock.Now()
	res := d.cfg.Sender.Send(ctx, c.Channel, &c.Event, started)
	if res.ErrorClass == channel.ErrClassCanceled {
		return herald.Completion{Delivery: c.Delivery}, false
	}
	now := d.cfg.Clock.Now()
	dl := c.Delivery
	dl.Attempts++
	dl.UpdatedAt = now
	dl.LastStatus = res.StatusCode
	att := herald.Attempt{
		ID:           herald.NewID(herald.PrefixAttempt, now),
		DeliveryID:   dl.ID,
		TenantID:     dl.TenantID,
		Number:       dl.Attempts,
		StartedAt:    started,
		DurationMS:   res.Duration.Milliseconds(),
		StatusCode:   res.StatusCode,
		ResponseBody: res.Body,
		ErrorClass:   res.ErrorClass,
		Error:        res.Error,
		Trigger:      trigger,
	}
	v := c.Channel.Policy.Decide(res.Outcome(), dl.Attempts-dl.RetryBase)
	if trigger != herald.TriggerAuto && v.Status == herald.StatusPending {
		v = herald.Verdict{Status: herald.StatusFailed, Reason: "manual attempt failed; retry by hand"}
	}
	// A REST Hook whose target answers 410 is unsubscribed: the platform
	// that made it dropped the subscription, and nobody would ever enable
	// a disabled hook again. The delivery and its attempts stay in the log.
	deleteChannel := false
	if v.DisableChannel == herald.DisabledGone && c.Channel.Kind == herald.ChannelHook {
		v.DisableChannel, v.Reason, deleteChannel = "", "receiver answered 410 Gone; hook deleted", true
	}
	if c.Channel.Kind == herald.ChannelAction {
		v = herald.ActionVerdict(v, res.Outcome())
	}
	dl.Status = v.Status
	dl.NextAttemptAt = nil
	dl.LastError = res.Error
	switch v.Status {
	case herald.StatusPending:
		next := now.Add(herald.Jitter(v.Delay, d.cfg.Jitter()))
		dl.NextAttemptAt = &next
	case herald.StatusFailed:
		if v.Reason != "" {
			dl.LastError = joinReason(res.Error, v.Reason)
		}
	case herald.StatusSucceeded:
		dl.LastError = ""
	}
	return herald.Completion{Delivery: dl, Attempt: att, DisableChannel: v.DisableChannel, DeleteChannel: deleteChannel}, true
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
