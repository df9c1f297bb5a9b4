package testenv

import (
	"sync"
	"time"
)

// Clock is the wall clock plus an offset a test moves forward, so that
// schedules of hours (retries, leases) are crossed in milliseconds while
// everything else runs in real time.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the wall clock's time plus the offset, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset).UTC()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}
