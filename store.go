package herald

import (
	"context"
	"time"
)

// Store keeps everything Herald knows. Every method is scoped to a tenant
// where the data belongs to one; an ID of another tenant is ErrNotFound.
// Lists are newest first and page with After (the last ID of the previous
// page) and Limit.
type Store interface {
	TenantStore
	EventTypeStore
	ChannelStore
	SubscriptionStore
	EventStore
	DeliveryStore

	// ConfigVersion changes whenever something publishing or authentication
	// reads changes: tenants, API keys, custom event types, toggles,
	// channels and subscriptions. Callers cache those reads per version;
	// a change made by any process is seen at the next call.
	ConfigVersion(ctx context.Context) (int64, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// SetSettingIfAbsent stores a setting unless it exists, and returns the
	// value in force afterwards.
	SetSettingIfAbsent(ctx context.Context, name, value string) (string, error)
	Close() error
}

// Page asks for one page of a list.
type Page struct {
	After string
	Limit int
}

// TenantStore keeps tenants and their API keys.
type TenantStore interface {
	// CreateTenant stores a tenant with its first key; ErrConflict if the ID
	// is taken.
	CreateTenant(ctx context.Context, t *Tenant, key *APIKey) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	ListTenants(ctx context.Context, p Page) ([]Tenant, error)
	CreateAPIKey(ctx context.Context, k *APIKey) error
	ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error)
	RevokeAPIKey(ctx context.Context, tenantID, id string, at time.Time) error
	// APIKeyByHash finds an unrevoked key by the SHA-256 of its secret.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
}

// EventTypeStore keeps tenants' custom event types and their toggles.
type EventTypeStore interface {
	// CreateEventType stores a tenant's custom type; ErrConflict if it exists.
	CreateEventType(ctx context.Context, tenantID string, et *EventType) error
	// ListEventTypes returns the tenant's custom types.
	ListEventTypes(ctx context.Context, tenantID string) ([]EventType, error)
	// SetEventTypeEnabled turns a type on or off for the tenant.
	SetEventTypeEnabled(ctx context.Context, tenantID, name string, enabled bool) error
	// DisabledEventTypes lists the types the tenant turned off.
	DisabledEventTypes(ctx context.Context, tenantID string) ([]string, error)
}

// ChannelStore keeps channels.
type ChannelStore interface {
	CreateChannel(ctx context.Context, c *Channel) error
	// CreateChannelWithSubscription stores a channel and one subscription
	// to it in one transaction, so a REST Hook is never half made.
	CreateChannelWithSubscription(ctx context.Context, c *Channel, sub *Subscription) error
	GetChannel(ctx context.Context, tenantID, id string) (*Channel, error)
	ListChannels(ctx context.Context, tenantID string, p Page) ([]Channel, error)
	// ListChannelsOfKind lists the tenant's channels of one kind, newest first.
	ListChannelsOfKind(ctx context.Context, tenantID, kind string, p Page) ([]Channel, error)
	// UpdateChannel writes every mutable field of c. Turning a channel off
	// fails its pending deliveries in the same transaction, with the reason.
	UpdateChannel(ctx context.Context, c *Channel) error
	// DeleteChannel removes a channel and its subscriptions and fails its
	// pending deliveries.
	DeleteChannel(ctx context.Context, tenantID, id string, at time.Time) error
}

// SubscriptionStore keeps subscriptions.
type SubscriptionStore interface {
	CreateSubscription(ctx context.Context, s *Subscription) error
	GetSubscription(ctx context.Context, tenantID, id string) (*Subscription, error)
	ListSubscriptions(ctx context.Context, tenantID string, f SubscriptionFilter, p Page) ([]Subscription, error)
	UpdateSubscription(ctx context.Context, s *Subscription) error
	DeleteSubscription(ctx context.Context, tenantID, id string) error
	// Routes returns what publishing needs in one read: the subscriptions
	// whose channel is enabled, and the types the tenant turned off.
	Routes(ctx context.Context, tenantID string) (*Routes, error)
}

// SubscriptionFilter narrows a subscription list.
type SubscriptionFilter struct {
	ChannelID string
}

// Routes is a tenant's routing table at one moment.
type Routes struct {
	Subscriptions []Subscription
	DisabledTypes map[string]bool
}

// EventStore keeps events and publishes them.
type EventStore interface {
	// Publish writes each publication's event and deliveries. All of a call's
	// publications commit together or not at all; nothing is reported before
	// it is durable.
	Publish(ctx context.Context, pubs []Publication) ([]PublishResult, error)
	GetEvent(ctx context.Context, tenantID, id string) (*Event, error)
	ListEvents(ctx context.Context, tenantID string, f EventFilter, p Page) ([]Event, error)
}

// Publication is one event to store with the channels it goes to.
type Publication struct {
	Event      Event
	ChannelIDs []string
	// Suppressed marks an event of a disabled type: stored, not delivered.
	Suppressed bool
	// RequestHash identifies the request body for idempotent replays.
	RequestHash []byte
	// LeaseUntil, when set, creates the deliveries already leased and marked
	// manual: the caller attempts them itself (channel tests).
	LeaseUntil *time.Time
	// IdempotencyTTL is how long a key is remembered.
	IdempotencyTTL time.Duration
	// HandedOff, when set, has one entry per ChannelIDs entry: true where
	// the dispatcher of this process takes the delivery straight from the
	// publisher. Such deliveries are written leased until HandoffLease, so
	// no claim takes them; the lease ends with the process. Only a store
	// used by a single process (SQLite) honours it; others refuse it.
	HandedOff    []bool
	HandoffLease time.Time
}

// PublishResult answers one Publication.
type PublishResult struct {
	EventID     string   `json:"id"`
	Deliveries  int      `json:"deliveries"`
	Suppressed  bool     `json:"suppressed,omitempty"`
	DeliveryIDs []string `json:"-"`
	// Replayed is true when the idempotency key was seen with the same body:
	// the original answer is returned and nothing new is written.
	Replayed bool `json:"-"`
	// KeyMismatch is true when the key was seen with another body.
	KeyMismatch bool `json:"-"`
}

// EventFilter narrows an event list.
type EventFilter struct {
	Type   string
	Source string
	Since  time.Time
	Until  time.Time
}

// DeliveryStore keeps deliveries and attempts, and is the dispatcher's queue.
type DeliveryStore interface {
	GetDelivery(ctx context.Context, tenantID, id string) (*Delivery, error)
	ListDeliveries(ctx context.Context, tenantID string, f DeliveryFilter, p Page) ([]Delivery, error)
	ListAttempts(ctx context.Context, tenantID, deliveryID string) ([]Attempt, error)

	// ClaimDeliveries leases up to Limit due deliveries, at most each
	// channel's free in-flight slots, and returns them with their event and
	// channel.
	ClaimDeliveries(ctx context.Context, p ClaimParams) ([]Claim, error)
	// CompleteDeliveries records attempts and the deliveries' new state, and
	// disables or deletes channels where asked, in one transaction.
	CompleteDeliveries(ctx context.Context, cs []Completion) error
	// ReleaseDeliveries drops the leases of deliveries that were claimed but
	// not attempted (shutdown cut them off), so they are due again at once.
	ReleaseDeliveries(ctx context.Context, ids []string) error
	// LeaseDelivery leases one finished delivery for a manual attempt; a
	// pending delivery is ErrConflict.
	LeaseDelivery(ctx context.Context, tenantID, id string, now, until time.Time) (*Claim, error)
	// RecoverDeliveries makes every failed delivery of a channel created at
	// or after since pending again, restarting its policy.
	RecoverDeliveries(ctx context.Context, tenantID, channelID string, since, now time.Time) (int, error)
}

// DeliveryFilter narrows a delivery list.
type DeliveryFilter struct {
	Status    DeliveryStatus
	ChannelID string
	EventID   string
	EventType string
	Since     time.Time
	Until     time.Time
}

// QueueLease is how long a delivery waiting in a single-process
// dispatcher's queue stays leased (handed off at publish, or claimed
// beyond its channel's free slots): past any wait in the queue. The lease
// ends sooner with the process, as SQLite clears leases at start.
const QueueLease = 24 * time.Hour

// ClaimParams asks for due deliveries.
type ClaimParams struct {
	Now   time.Time
	Limit int
	// LeaseSlack is added to each channel's timeout to make its lease.
	LeaseSlack time.Duration
	// Busy, when set, is each channel's requests in flight as the
	// dispatcher counts them. A single-process store (SQLite) uses it
	// instead of counting leases: deliveries handed off at publish are
	// leased while they wait, so leases overcount them. A store shared by
	// several processes (PostgreSQL) counts the channel's leases less
	// Held, the other processes' share, and adds Busy.
	Busy map[string]int
	// Held, with Busy, is each channel's deliveries this dispatcher holds
	// leased: queued, in flight, or waiting for their result to be
	// written.
	Held map[string]int
	// Queue, with Busy, lets each channel without a rate limit take up to
	// Queue deliveries beyond its free slots, leased for QueueWait longer
	// than one that starts now: the dispatcher queues them in memory and
	// starts them as slots free, so a channel's backlog costs a claim per
	// batch rather than per freed slot. A shared store queues only for a
	// channel no other process holds leases of: the queue's leases then
	// keep the others off the channel until it has run down, and the
	// dispatcher may start its queue by its own count.
	Queue     int
	QueueWait time.Duration
	// QueueFor, when it has a channel, is that channel's Queue instead.
	QueueFor map[string]int
}

// QueueOf is how many deliveries of a channel a claim may queue.
func (p ClaimParams) QueueOf(channelID string) int {
	if n, ok := p.QueueFor[channelID]; ok {
		return n
	}
	return p.Queue
}

// Claim is a leased delivery with what it takes to attempt it. Channel is
// nil when the channel no longer exists.
type Claim struct {
	Delivery Delivery
	Event    Event
	Channel  *Channel
	// SendAt is when the channel's rate limit lets this delivery go; zero
	// means at once. The lease covers the wait.
	SendAt time.Time
	// LeaseUntil is when the claim's lease ends.
	LeaseUntil time.Time
}

// RateSlot hands out the next send time of a channel limited to perSec
// requests a second: the later of now and next, and the slot after it.
// Claims call it under the channel's lock, so every process shares one
// schedule.
func RateSlot(next, now time.Time, perSec float64) (sendAt, following time.Time) {
	sendAt = next
	if sendAt.Before(now) {
		sendAt = now
	}
	return sendAt, sendAt.Add(time.Duration(float64(time.Second) / perSec))
}

// MaxRateWait is the longest a claim may schedule a delivery ahead for a
// rate limit: half the lease slack, so a lease always outlasts the wait.
func (p ClaimParams) MaxRateWait() time.Duration { return p.LeaseSlack / 2 }

// Completion is the result of one attempt.
type Completion struct {
	Delivery Delivery // ID, TenantID, ChannelID; Status, NextAttemptAt, LastError, LastStatus as they now are
	Attempt  Attempt
	// DisableChannel, when set, disables the channel with this reason and
	// fails its other pending deliveries.
	DisableChannel string
	// DeleteChannel, when set, deletes the channel and its subscriptions
	// after recording the attempt (a REST Hook whose target answered 410)
	// and fails its other pending deliveries; the deliveries and their
	// attempts stay in the log.
	DeleteChannel bool
}
