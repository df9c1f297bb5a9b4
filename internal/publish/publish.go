// Package publish turns published events into stored events and
// deliveries: it validates each event against its type, finds the channels
// whose subscriptions match, and hands both to the store in one write.
package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/catalog"
	"github.com/heraldhq/herald/internal/filter"
	"github.com/heraldhq/herald/internal/schema"
)

// Limits on what may be published.
const (
	MaxDataBytes      = 256 << 10
	MaxBatch          = 1000
	MaxIdempotencyKey = 255
	IdempotencyTTL    = 24 * time.Hour
)

// MinTime and MaxTime bound the times Herald accepts: stores keep times as
// Unix nanoseconds, which cannot hold dates much outside these.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Input is one event as a publisher sent it.
type Input struct {
	Type           string          `json:"type"`
	Source         string          `json:"source"`
	OccurredAt     *time.Time      `json:"occurred_at"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
	// RequestHash identifies the request for idempotent replays.
	RequestHash []byte `json:"-"`
	// compact says Data has no whitespace outside strings, when
	// DecodeInput read it.
	compact bool
}

// Publisher validates, routes and stores events.
type Publisher struct {
	store   herald.Store
	catalog *catalog.Catalog
	clock   herald.Clock
	log     *slog.Logger
	wake    func()
	handoff Handoff
	filters filter.Cache

	mu      sync.Mutex
	schemas map[string]*schema.Validator // by type (and tenant, for custom types)
	tenants map[string]*tenantConfig
}

// tenantConfig is what publishing reads of a tenant's configuration, as of
// one config version.
type tenantConfig struct {
	version int64
	custom  []herald.EventType
	routes  *herald.Routes
}

// maxCachedTenants bounds the configuration cache; past it, it starts over.
const maxCachedTenants = 10_000

// config returns the tenant's custom types and routes, read again only
// when the store's config version has moved.
func (p *Publisher) config(ctx context.Context, tenantID string) (*tenantConfig, error) {
	v, err := p.store.ConfigVersion(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	c := p.tenants[tenantID]
	p.mu.Unlock()
	if c != nil && c.version == v {
		return c, nil
	}
	// Read after the version: what is read is at least that new.
	c = &tenantConfig{version: v}
	if c.custom, err = p.store.ListEventTypes(ctx, tenantID); err != nil {
		return nil, err
	}
	if c.routes, err = p.store.Routes(ctx, tenantID); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.tenants == nil || len(p.tenants) >= maxCachedTenants {
		p.tenants = map[string]*tenantConfig{}
	}
	p.tenants[tenantID] = c
	p.mu.Unlock()
	return c, nil
}

// Handoff takes new deliveries straight to a dispatcher of this process
// (see dispatch.Dispatcher.Reserve).
type Handoff interface {
	Reserve(ctx context.Context, e *herald.Event, channelIDs []string) (chs []*herald.Channel, wake bool)
	Unreserve(e *herald.Event, chs []*herald.Channel)
	Handoff(claims []herald.Claim)
}

// SetHandoff makes Publish hand deliveries to h where it takes them.
func (p *Publisher) SetHandoff(h Handoff) { p.handoff = h }

// New returns a Publisher; wake is called after each commit that created
// deliveries.
func New(store herald.Store, cat *catalog.Catalog, clock herald.Clock, log *slog.Logger, wake func()) *Publisher {
	return &Publisher{store: store, catalog: cat, clock: clock, log: log, wake: wake, schemas: map[string]*schema.Validator{}}
}

// EventType finds a type the tenant may publish: built-in or its own.
func (p *Publisher) EventType(ctx context.Context, tenantID, name string) (*herald.EventType, error) {
	if et, ok := p.catalog.Lookup(name); ok {
		return &et, nil
	}
	cfg, err := p.config(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for i := range cfg.custom {
		if cfg.custom[i].Name == name {
			et := cfg.custom[i]
			return &et, nil
		}
	}
	return nil, herald.ErrNotFound
}

// Publish validates every input (field names start with prefix(i)), then
// stores them all in one transaction. Validation problems of all inputs are
// reported together and nothing is stored.
func (p *Publisher) Publish(ctx context.Context, tenantID string, ins []Input, prefix func(i int) string) ([]herald.PublishResult, error) {
	now := p.clock.Now()
	cfg, err := p.config(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	verr := &herald.ValidationError{}
	events := make([]herald.Event, len(ins))
	for i := range ins {
		events[i] = p.validate(verr, prefix(i), tenantID, &ins[i], cfg.custom, now)
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	routes := cfg.routes
	pubs := make([]herald.Publication, len(ins))
	for i := range events {
		pubs[i] = herald.Publication{Event: events[i], RequestHash: ins[i].RequestHash, IdempotencyTTL: IdempotencyTTL}
		if routes.DisabledTypes[events[i].Type] {
			pubs[i].Suppressed = true
			continue
		}
		pubs[i].ChannelIDs = p.route(routes, &events[i])
	}
	var taken [][]*herald.Channel
	wake := true
	if p.handoff != nil {
		taken, wake = p.reserve(ctx, pubs, now)
	}
	res, err := p.store.Publish(ctx, pubs)
	if err != nil {
		for i, chs := range taken {
			if chs != nil {
				p.handoff.Unreserve(&pubs[i].Event, chs)
			}
		}
		return nil, err
	}
	if taken != nil {
		p.handOff(pubs, res, taken)
	}
	for _, r := range res {
		if wake && r.Deliveries > 0 && !r.Replayed {
			p.wake()
			break
		}
	}
	return res, nil
}

// reserve asks the handoff to take the publications' deliveries and marks
// those it took; wake says the dispatcher is to look for the rest in the
// store after the commit.
func (p *Publisher) reserve(ctx context.Context, pubs []herald.Publication, now time.Time) (taken [][]*herald.Channel, wake bool) {
	taken = make([][]*herald.Channel, len(pubs))
	for i := range pubs {
		pub := &pubs[i]
		if pub.Suppressed || len(pub.ChannelIDs) == 0 {
			continue
		}
		chs, w := p.handoff.Reserve(ctx, &pub.Event, pub.ChannelIDs)
		wake = wake || w
		if chs == nil {
			continue
		}
		taken[i] = chs
		pub.HandedOff = make([]bool, len(chs))
		for j, ch := range chs {
			pub.HandedOff[j] = ch != nil
		}
		pub.HandoffLease = now.Add(herald.QueueLease)
	}
	return taken, wake
}

// handOff passes the stored deliveries that were taken to the handoff, and
// gives back what an idempotent replay did not write.
func (p *Publisher) handOff(pubs []herald.Publication, res []herald.PublishResult, taken [][]*herald.Channel) {
	// Sized up front: a claim is a few hundred bytes, and growing the
	// slice by appends allocated three times what an event of many
	// channels hands off (an eighth of all allocation in isolation).
	n := 0
	for _, chs := range taken {
		n += len(chs)
	}
	claims := make([]herald.Claim, 0, n)
	for i, chs := range taken {
		if chs == nil {
			continue
		}
		e, r := &pubs[i].Event, &res[i]
		if r.Replayed || r.KeyMismatch || len(r.DeliveryIDs) != len(chs) {
			p.handoff.Unreserve(e, chs)
			continue
		}
		for j, ch := range chs {
			if ch == nil {
				continue
			}
			created := e.CreatedAt
			claims = append(claims, herald.Claim{
				Delivery: herald.Delivery{ID: r.DeliveryIDs[j], TenantID: e.TenantID, EventID: e.ID, EventType: e.Type,
					ChannelID: ch.ID, Status: herald.StatusPending, NextAttemptAt: &created, CreatedAt: created, UpdatedAt: created},
				Event: *e, Channel: ch, LeaseUntil: pubs[i].HandoffLease,
			})
		}
	}
	if len(claims) > 0 {
		p.handoff.Handoff(claims)
	}
}

// PublishTest stores an event of type et for one channel, its delivery
// already leased for the caller to attempt (a channel test).
func (p *Publisher) PublishTest(ctx context.Context, tenantID string, et *herald.EventType, channelID string, lease time.Duration) (*herald.Event, string, error) {
	now := p.clock.Now()
	data := et.Example
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	e := herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: tenantID, Type: et.Name, Source: "test",
		OccurredAt: now, Data: compact(data), CreatedAt: now}
	until := now.Add(lease)
	res, err := p.store.Publish(ctx, []herald.Publication{{Event: e, ChannelIDs: []string{channelID}, LeaseUntil: &until}})
	if err != nil {
		return nil, "", err
	}
	return &e, res[0].DeliveryIDs[0], nil
}

// compact returns b without insignificant whitespace. Most publishers send
// compact JSON already, and checking for whitespace outside strings is
// several times cheaper than compacting; b is valid JSON here.
func compact(b json.RawMessage) json.RawMessage {
	if isCompact(b) {
		return b
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// isCompact reports whether valid JSON b has no whitespace outside
// strings.
func isCompact(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++ // the escaped character
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

func (p *Publisher) validate(verr *herald.ValidationError, prefix, tenantID string, in *Input, custom []herald.EventType, now time.Time) herald.Event {
	e := herald.Event{TenantID: tenantID, Type: in.Type, Source: in.Source, CreatedAt: now, IdempotencyKey: in.IdempotencyKey}
	e.ID = herald.NewID(herald.PrefixEvent, now)
	if e.Source == "" {
		e.Source = herald.DefaultSource
	}
	if !herald.ValidSource(e.Source) {
		verr.Add(prefix+"source", "must be a lowercase slug of a-z, 0-9, _ or - (at most 32), such as admin, shop or funnel")
	}
	e.OccurredAt = now
	if in.OccurredAt != nil {
		e.OccurredAt = in.OccurredAt.UTC()
		if e.OccurredAt.Before(MinTime) || !e.OccurredAt.Before(MaxTime) {
			verr.Add(prefix+"occurred_at", "must be between %s and %s, such as \"2026-11-24T10:00:00Z\"; leave it out to use the time of publishing",
				MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339))
		}
	}
	if len(in.IdempotencyKey) > MaxIdempotencyKey {
		verr.Add(prefix+"idempotency_key", "is %d characters long; use a key of at most %d characters", len(in.IdempotencyKey), MaxIdempotencyKey)
	}
	var et *herald.EventType
	schemaKey := in.Type // built-in types are one per name
	switch {
	case in.Type == "":
		verr.Add(prefix+"type", "is required: name an event type such as \"payment.succeeded\" (GET /v1/event-types lists them)")
	default:
		if b, ok := p.catalog.Lookup(in.Type); ok {
			et = &b
		} else if i := slices.IndexFunc(custom, func(c herald.EventType) bool { return c.Name == in.Type }); i >= 0 {
			// A custom type is one per tenant and name, and never changes.
			et, schemaKey = &custom[i], tenantID+"\x00"+in.Type
		} else {
			verr.Add(prefix+"type", "unknown event type %q; GET /v1/tenants/%s/event-types lists the known ones, or create a custom type", in.Type, tenantID)
		}
	}
	data := bytes.TrimSpace(in.Data)
	switch {
	case len(data) == 0 || bytes.Equal(data, []byte("null")):
		verr.Add(prefix+"data", "is required: send the event's data as a JSON object")
		return e
	case data[0] != '{':
		verr.Add(prefix+"data", "must be a JSON object")
		return e
	case len(data) > MaxDataBytes:
		verr.Add(prefix+"data", "is %d bytes; at most %d bytes (256 KiB) are allowed per event", len(data), MaxDataBytes)
		return e
	case !utf8.Valid(data):
		// Decoding keeps raw data as sent; JSON must be UTF-8, and receivers
		// (and PostgreSQL) refuse anything else.
		verr.Add(prefix+"data", "is not valid UTF-8; send JSON text encoded as UTF-8 (escape binary content, e.g. as base64)")
		return e
	}
	if e.Data = data; !in.compact {
		e.Data = compact(data)
	}
	if et != nil && len(et.Schema) > 0 {
		v, err := p.validator(schemaKey, et.Schema)
		if err != nil {
			p.log.Error("event type schema does not compile", "type", et.Name, "err", err)
		} else {
			for _, fe := range v.ValidateJSON(e.Data) {
				verr.Add(prefix+fe.Field, "%s", fe.Detail)
			}
		}
	}
	return e
}

// validator returns the compiled schema of the type named by key.
func (p *Publisher) validator(key string, raw json.RawMessage) (*schema.Validator, error) {
	p.mu.Lock()
	v, ok := p.schemas[key]
	p.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := schema.Compile(raw)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.schemas) > 4096 {
		p.schemas = map[string]*schema.Validator{}
	}
	p.schemas[key] = v
	p.mu.Unlock()
	return v, nil
}

// route returns the channels whose subscriptions match e, each once.
func (p *Publisher) route(r *herald.Routes, e *herald.Event) []string {
	var out []string
	var data any
	decoded := false
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		if slices.Contains(out, s.ChannelID) || !s.MatchesType(e.Type) || !s.MatchesSource(e.Source) {
			continue
		}
		if s.Filter != "" {
			if !decoded {
				if err := json.Unmarshal(e.Data, &data); err != nil {
					data = nil
				}
				decoded = true
			}
			if !p.match(s, e, data) {
				continue
			}
		}
		out = append(out, s.ChannelID)
	}
	return out
}

func (p *Publisher) match(s *herald.Subscription, e *herald.Event, data any) bool {
	prog, err := p.filters.Get(s.Filter)
	if err != nil {
		p.log.Warn("subscription filter does not compile", "subscription", s.ID, "err", err)
		return false
	}
	ok, err := prog.Match(filter.Env{ID: e.ID, Type: e.Type, Source: e.Source, OccurredAt: e.OccurredAt, Data: data})
	if err != nil {
		p.log.Info("subscription filter error counts as no match", "subscription", s.ID, "event", e.ID, "err", fmt.Sprint(err))
		return false
	}
	return ok
}
