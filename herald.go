// Package herald holds Herald's domain: tenants, event types, events, channels,
// subscriptions, deliveries and attempts, the errors they share, and the Store
// contract that every storage adapter implements. It does no I/O and imports
// nothing of this module; every other package depends on it, never the reverse.
package herald

import (
	"crypto/rand"
	"time"

	"github.com/oklog/ulid/v2"
)

// ID prefixes. Every ID is a prefix plus a ULID, so IDs sort by creation time
// and a glance tells what an ID names.
const (
	PrefixTenant       = "ten_"
	PrefixAPIKey       = "key_"
	PrefixEvent        = "evt_"
	PrefixChannel      = "ch_"
	PrefixSubscription = "sub_"
	PrefixDelivery     = "dlv_"
	PrefixAttempt      = "att_"
)

// NewID returns prefix + a ULID for t: time-sortable, 26 characters of
// Crockford base32 after the prefix.
func NewID(prefix string, t time.Time) string {
	return prefix + ulid.MustNew(ulid.Timestamp(t), rand.Reader).String()
}

// Clock tells the time. The dispatcher and the publisher take one so that tests
// can move time forward instead of waiting out real retry schedules.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time in UTC, so every time Herald writes reads
// the same whatever the machine's zone.
func (SystemClock) Now() time.Time { return time.Now().UTC() }
