package herald

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// Tenant is one merchant account. Every other row belongs to exactly one.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey is a tenant's key as stored: only its SHA-256 hash and a short
// prefix to recognise it by are kept; the secret is shown once, at creation.
type APIKey struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id"`
	Prefix    string     `json:"prefix"`
	Hash      []byte     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// EventType describes one kind of event: its `group.action` name, what it
// means, the JSON Schema its data must satisfy and a realistic example.
type EventType struct {
	Name        string          `json:"name"`
	Group       string          `json:"group"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Example     json.RawMessage `json:"example,omitempty"`
	// Origins names the catalogs the type comes from: "dodo", "sendowl",
	// "system_notifications", or "custom" for a tenant's own type.
	Origins []string `json:"origins"`
}

// Event type origins.
const (
	OriginDodo                = "dodo"
	OriginSendOwl             = "sendowl"
	OriginSystemNotifications = "system_notifications"
	OriginCustom              = "custom"
)

var (
	eventTypeName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
	sourceSlug    = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	tenantSlug    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// ValidEventTypeName reports whether name has the `group.action` form.
func ValidEventTypeName(name string) bool {
	return len(name) <= 128 && eventTypeName.MatchString(name)
}

// GroupOf returns the group part of a `group.action` name.
func GroupOf(name string) string {
	g, _, _ := strings.Cut(name, ".")
	return g
}

// ValidSource reports whether s is a source slug: [a-z0-9_-], at most 32.
func ValidSource(s string) bool { return sourceSlug.MatchString(s) }

// ValidTenantID reports whether id may name a tenant in a URL path.
func ValidTenantID(id string) bool { return tenantSlug.MatchString(id) }

// DefaultSource is the source of an event published without one.
const DefaultSource = "api"

// Event is one thing that happened, as published and stored.
type Event struct {
	ID         string          `json:"id"`
	TenantID   string          `json:"tenant_id"`
	Type       string          `json:"type"`
	Source     string          `json:"source"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
	CreatedAt  time.Time       `json:"created_at"`
	// IdempotencyKey is the publisher's key, if it sent one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Channel kinds. Webhook is the only one so far.
const ChannelWebhook = "webhook"

// ChannelAction is a templated HTTP request built from each event (action.go).
const ChannelAction = "action"

// ChannelHook is a REST Hook: a webhook channel an integration platform
// made through /hooks with one subscription. It is delivered exactly like a
// webhook; a 410 Gone deletes it instead of disabling it.
const ChannelHook = "hook"

// Channel is where notifications go.
type Channel struct {
	ID       string            `json:"id"`
	TenantID string            `json:"tenant_id"`
	Kind     string            `json:"kind"`
	Name     string            `json:"name"`
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers"`
	Policy   Policy            `json:"policy"`
	// TimeoutS overrides the policy's timeout when non-zero.
	TimeoutS        int      `json:"timeout_s,omitempty"`
	Enabled         bool     `json:"enabled"`
	DisabledReason  string   `json:"disabled_reason,omitempty"`
	MaxInFlight     int      `json:"max_in_flight"`
	RateLimitPerSec float64  `json:"rate_limit_per_sec"`
	Secrets         []Secret `json:"-"`
	// Action is the request template of an action channel, nil otherwise.
	Action    *Action   `json:"action,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Channel defaults and bounds.
const (
	DefaultMaxInFlight = 16
	MaxMaxInFlight     = 1024
	MaxTimeoutS        = 120
)

// Disabled reasons Herald sets itself.
const (
	DisabledGone   = "gone"   // the target answered 410 Gone
	DisabledManual = "manual" // a person turned the channel off
)

// Timeout is the channel's request timeout: its own, else its policy's.
func (c *Channel) Timeout() time.Duration {
	if c.TimeoutS > 0 {
		return time.Duration(c.TimeoutS) * time.Second
	}
	return c.Policy.Timeout()
}

// Secret is one signing secret of a channel. The current secret has no
// expiry; after a rotation the previous one keeps signing until ExpiresAt.
type Secret struct {
	Key       string     `json:"key"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ActiveSecrets returns the secrets that still sign at now, current first.
func (c *Channel) ActiveSecrets(now time.Time) []string {
	out := make([]string, 0, len(c.Secrets))
	for _, s := range c.Secrets {
		if s.ExpiresAt == nil || now.Before(*s.ExpiresAt) {
			out = append(out, s.Key)
		}
	}
	return out
}

// CurrentSecret is the newest signing secret.
func (c *Channel) CurrentSecret() string {
	for _, s := range c.Secrets {
		if s.ExpiresAt == nil {
			return s.Key
		}
	}
	return ""
}

// Subscription attaches a channel to event types, sources and an optional
// filter expression.
type Subscription struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id"`
	ChannelID string `json:"channel_id"`
	// EventTypes holds exact names, `group.*` or `*`.
	EventTypes []string `json:"event_types"`
	// Sources limits the subscription to events from these sources; empty
	// means every source.
	Sources   []string  `json:"sources"`
	Filter    string    `json:"filter,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MatchesType reports whether the subscription covers event type t.
func (s *Subscription) MatchesType(t string) bool {
	for _, p := range s.EventTypes {
		if MatchTypePattern(p, t) {
			return true
		}
	}
	return false
}

// MatchesSource reports whether the subscription covers source src.
func (s *Subscription) MatchesSource(src string) bool {
	if len(s.Sources) == 0 {
		return true
	}
	for _, x := range s.Sources {
		if x == src {
			return true
		}
	}
	return false
}

// MatchTypePattern matches an event type against `*`, `group.*` or an exact name.
func MatchTypePattern(pattern, t string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(t, pattern[:len(pattern)-1])
	default:
		return pattern == t
	}
}

// ValidTypePattern reports whether p is `*`, `group.*` or an event type name.
func ValidTypePattern(p string) bool {
	if p == "*" {
		return true
	}
	if g, ok := strings.CutSuffix(p, ".*"); ok {
		return eventTypeName.MatchString(g+".x") && !strings.Contains(g, ".")
	}
	return ValidEventTypeName(p)
}

// DeliveryStatus is where a delivery stands.
//
//	pending ──attempt ok──▶ succeeded
//	   │ └─attempt failed, retries left──▶ pending (next_attempt_at later)
//	   └─no retries left / permanent / channel off──▶ failed
//	failed ──manual retry ok / recover──▶ succeeded / pending
type DeliveryStatus string

// Delivery statuses.
const (
	StatusPending   DeliveryStatus = "pending"
	StatusSucceeded DeliveryStatus = "succeeded"
	StatusFailed    DeliveryStatus = "failed"
)

// Valid reports whether s is a known status.
func (s DeliveryStatus) Valid() bool {
	return s == StatusPending || s == StatusSucceeded || s == StatusFailed
}

// Delivery is one event for one channel.
type Delivery struct {
	ID            string         `json:"id"`
	TenantID      string         `json:"tenant_id"`
	EventID       string         `json:"event_id"`
	EventType     string         `json:"event_type"`
	ChannelID     string         `json:"channel_id"`
	Status        DeliveryStatus `json:"status"`
	Attempts      int            `json:"attempts"`
	NextAttemptAt *time.Time     `json:"next_attempt_at,omitempty"`
	LastError     string         `json:"last_error,omitempty"`
	LastStatus    int            `json:"last_status_code,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
	// RetryBase is the attempt count at which the current automatic run of
	// the policy began; recover restarts the policy by moving it.
	RetryBase int `json:"-"`
	// Manual marks a test send: never retried automatically.
	Manual bool `json:"-"`
}

// Error classes of an attempt.
const (
	ErrClassNone    = ""
	ErrClassStatus  = "status"  // the receiver answered with a non-2xx status
	ErrClassTimeout = "timeout" // no complete answer within the timeout
	ErrClassConnect = "connect" // DNS, refused or reset connection
	ErrClassTLS     = "tls"     // the TLS handshake or certificate failed
	ErrClassRefused = "refused" // the target is not an allowed address
)

// Attempt is one try at a delivery.
type Attempt struct {
	ID           string    `json:"id"`
	DeliveryID   string    `json:"delivery_id"`
	TenantID     string    `json:"tenant_id"`
	Number       int       `json:"number"`
	StartedAt    time.Time `json:"started_at"`
	DurationMS   int64     `json:"duration_ms"`
	StatusCode   int       `json:"status_code,omitempty"`
	ResponseBody string    `json:"response_body,omitempty"`
	ErrorClass   string    `json:"error_class,omitempty"`
	Error        string    `json:"error,omitempty"`
	// Trigger says why this attempt ran: "auto", "manual" or "test".
	Trigger string `json:"trigger"`
}

// Attempt triggers.
const (
	TriggerAuto   = "auto"
	TriggerManual = "manual"
	TriggerTest   = "test"
)

// MaxResponseBody is how much of a response body an attempt keeps.
const MaxResponseBody = 4096
