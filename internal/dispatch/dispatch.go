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
	// ClaimBatch bounds one claim.
	ClaimBatch int
	// LeaseSlack is added to a channel's timeout to make a lease.
	LeaseSlack time.Duration
	// ShutdownGrace is how long in-flight requests may finish after Run's
	// context ends; those still running then are cut off and released.
	ShutdownGrace time.Duration
	// Jitter returns a number in [0,1) for retry jitter.
	Jitter func() float64
}

// Dispatcher runs the delivery loop.
type Dispatcher struct {
	cfg      Config
	wake     chan struct{}
	freed    chan struct{}
	inflight atomic.Int64

	completer *completer
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
		cfg.ClaimBatch = 128
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
	return &Dispatcher{
		cfg:       cfg,
		wake:      make(chan struct{}, 1),
		freed:     make(chan struct{}, 1),
		completer: &completer{store: cfg.Store},
	}
}

// Wake makes the loop look for due deliveries now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then lets in-flight requests finish within
// the shutdown grace and releases the rest.
func (d *Dispatcher) Run(ctx context.Context) {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	ticker := time.NewTicker(d.cfg.PollInterval)
	defer ticker.Stop()
	for ctx.Err() == nil {
		n, limit := d.claimAndStart(ctx, workCtx, &wg)
		if n > 0 && n == limit {
			continue // a full claim: more may be due
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-ticker.C:
		case <-d.freed:
			// A finished request frees one slot; claiming for each alone
			// would cost a write per delivery. Let a few more finish.
			select {
			case <-ctx.Done():
			case <-d.wake:
			case <-time.After(freedDebounce):
			}
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.ShutdownGrace):
		d.cfg.Logger.Warn("shutdown grace over; releasing in-flight deliveries", "in_flight", d.inflight.Load())
		cancelWork()
		<-done
	}
}

// freedDebounce is how long the loop lets finished requests accumulate
// before claiming for their slots.
const freedDebounce = 2 * time.Millisecond

// claimAndStart claims up to the free slots and starts a request for each;
// it returns how many it claimed and how many it asked for.
func (d *Dispatcher) claimAndStart(ctx, workCtx context.Context, wg *sync.WaitGroup) (n, limit int) {
	free := d.cfg.Concurrency - int(d.inflight.Load())
	if free <= 0 {
		return 0, 0
	}
	limit = min(free, d.cfg.ClaimBatch)
	claims, err := d.cfg.Store.ClaimDeliveries(ctx, herald.ClaimParams{
		Now:        d.cfg.Clock.Now(),
		Limit:      limit,
		LeaseSlack: d.cfg.LeaseSlack,
	})
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Error("claim deliveries", "err", err)
		}
		return 0, limit
	}
	for _, c := range claims {
		d.inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer d.slotFreed()
			d.deliver(workCtx, c)
		}()
	}
	return len(claims), limit
}

func (d *Dispatcher) slotFreed() {
	d.inflight.Add(-1)
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

// deliver makes one automatic attempt and records it.
func (d *Dispatcher) deliver(ctx context.Context, c herald.Claim) {
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
	if err := d.completer.complete(comp); err != nil {
		// The lease expires and the delivery is attempted again: at least once.
		d.cfg.Logger.Error("record attempt", "delivery", c.Delivery.ID, "err", err)
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
	if err := d.cfg.Store.ReleaseDeliveries(context.Background(), []string{c.Delivery.ID}); err != nil {
		d.cfg.Logger.Error("release delivery", "delivery", c.Delivery.ID, "err", err)
	}
}

// Attempt makes one attempt outside the loop (manual retry, channel test)
// and records it: success ends the delivery as succeeded, anything else as
// failed; it is never retried automatically.
func (d *Dispatcher) Attempt(ctx context.Context, c herald.Claim, trigger string) (herald.Completion, error) {
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
