package herald

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Policy names.
const (
	PolicyStandard = "standard"
	PolicyPostback = "postback"
	PolicyCustom   = "custom"
)

// Policy decides how a channel's deliveries are retried. On the wire it is
// either a name ("standard", "postback") or a custom object.
type Policy struct {
	Name string `json:"-"`
	// DelaysS are the waits before each retry, in seconds; len(DelaysS)+1
	// attempts are made at most.
	DelaysS []int `json:"delays_s"`
	// TimeoutS is the default request timeout of channels using the policy.
	TimeoutS int `json:"timeout_s"`
	// RetryOnTimeout retries a request that timed out.
	RetryOnTimeout bool `json:"retry_on_timeout"`
	// RetryStatuses lists the HTTP statuses that are retried; empty means the
	// standard set: 3xx, 408, 409, 425, 429 and 5xx.
	RetryStatuses []int `json:"retry_statuses,omitempty"`
}

// StandardPolicy follows Standard Webhooks practice: immediately, then
// +5 s, +5 min, +30 min, +2 h, +5 h, +10 h, +10 h.
func StandardPolicy() Policy {
	return Policy{
		Name:           PolicyStandard,
		DelaysS:        []int{5, 300, 1800, 7200, 18000, 36000, 36000},
		TimeoutS:       15,
		RetryOnTimeout: true,
	}
}

// PostbackPolicy is the System Notifications postback policy: 30 s timeout,
// at most 3 retries after 30 s, 2 min and 10 min, only on 408, 429, 500,
// 502, 503, 504 or a connection error; a timeout is not retried.
func PostbackPolicy() Policy {
	return Policy{
		Name:           PolicyPostback,
		DelaysS:        []int{30, 120, 600},
		TimeoutS:       30,
		RetryOnTimeout: false,
		RetryStatuses:  []int{408, 429, 500, 502, 503, 504},
	}
}

// Limits of a custom policy.
const (
	MaxPolicyRetries = 50
	MaxPolicyDelayS  = 7 * 24 * 3600
)

// MarshalJSON writes a named policy as its name, a custom one as an object.
func (p Policy) MarshalJSON() ([]byte, error) {
	if p.Name == PolicyStandard || p.Name == PolicyPostback {
		return json.Marshal(p.Name)
	}
	type plain Policy
	if p.DelaysS == nil {
		p.DelaysS = []int{} // no retries reads [] rather than null
	}
	return json.Marshal(plain(p))
}

// UnmarshalJSON reads a policy name or a custom object. It does not
// validate; call Validate.
func (p *Policy) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		switch name {
		case PolicyStandard:
			*p = StandardPolicy()
		case PolicyPostback:
			*p = PostbackPolicy()
		default:
			return fmt.Errorf("unknown policy %q: use \"standard\", \"postback\" or an object {\"delays_s\": [...], \"timeout_s\": N, \"retry_on_timeout\": bool, \"retry_statuses\": [...]}", name)
		}
		return nil
	}
	type plain Policy
	var c plain
	c.TimeoutS = 15
	c.RetryOnTimeout = true
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("policy object: %w", err)
	}
	*p = Policy(c)
	p.Name = PolicyCustom
	return nil
}

// Validate checks a custom policy's bounds.
func (p Policy) Validate(field string) error {
	v := &ValidationError{}
	if len(p.DelaysS) > MaxPolicyRetries {
		v.Add(field+".delays_s", "at most %d retries are allowed", MaxPolicyRetries)
	}
	for i, d := range p.DelaysS {
		if d < 0 || d > MaxPolicyDelayS {
			v.Add(fmt.Sprintf("%s.delays_s[%d]", field, i), "must be between 0 and %d seconds", MaxPolicyDelayS)
		}
	}
	if p.TimeoutS < 1 || p.TimeoutS > MaxTimeoutS {
		v.Add(field+".timeout_s", "must be between 1 and %d seconds", MaxTimeoutS)
	}
	for i, s := range p.RetryStatuses {
		if s < 100 || s > 599 {
			v.Add(fmt.Sprintf("%s.retry_statuses[%d]", field, i), "must be an HTTP status between 100 and 599")
		}
	}
	return v.Err()
}

// Timeout is the policy's request timeout.
func (p Policy) Timeout() time.Duration {
	if p.TimeoutS <= 0 {
		return 15 * time.Second
	}
	return time.Duration(p.TimeoutS) * time.Second
}

// Outcome is what one attempt came to, as far as the policy cares.
type Outcome struct {
	StatusCode int
	ErrorClass string
	// RetryAfter is the receiver's Retry-After hint, zero if none.
	RetryAfter time.Duration
}

// Verdict is the policy's decision after an attempt.
type Verdict struct {
	Status DeliveryStatus
	// Delay before the next attempt, when Status is pending.
	Delay time.Duration
	// DisableChannel, when set, is the reason to disable the channel.
	DisableChannel string
	// Reason explains a failed verdict.
	Reason string
}

// MaxRetryAfter bounds how long a receiver's Retry-After can push a retry.
const MaxRetryAfter = 6 * time.Hour

// Decide returns the verdict after an attempt that came to o, where made is
// the number of attempts of the current automatic run, this one included.
// Jitter is not applied here; see Jitter.
func (p Policy) Decide(o Outcome, made int) Verdict {
	if o.ErrorClass == ErrClassNone && o.StatusCode >= 200 && o.StatusCode < 300 {
		return Verdict{Status: StatusSucceeded}
	}
	if o.StatusCode == 410 {
		return Verdict{Status: StatusFailed, DisableChannel: DisabledGone, Reason: "receiver answered 410 Gone; channel disabled"}
	}
	if !p.retryable(o) {
		return Verdict{Status: StatusFailed, Reason: p.permanentReason(o)}
	}
	if made > len(p.DelaysS) {
		return Verdict{Status: StatusFailed, Reason: fmt.Sprintf("gave up after %d attempts", made)}
	}
	delay := time.Duration(p.DelaysS[made-1]) * time.Second
	if o.RetryAfter > 0 {
		delay = max(delay, min(o.RetryAfter, MaxRetryAfter))
	}
	return Verdict{Status: StatusPending, Delay: delay}
}

func (p Policy) retryable(o Outcome) bool {
	switch o.ErrorClass {
	case ErrClassTimeout:
		return p.RetryOnTimeout
	case ErrClassConnect, ErrClassTLS:
		return true
	case ErrClassRefused, ErrClassTemplate:
		return false
	}
	if len(p.RetryStatuses) > 0 {
		return slices.Contains(p.RetryStatuses, o.StatusCode)
	}
	c := o.StatusCode
	return (c >= 300 && c < 400) || c == 408 || c == 409 || c == 425 || c == 429 || c >= 500
}

func (p Policy) permanentReason(o Outcome) string {
	switch o.ErrorClass {
	case ErrClassTimeout:
		return "request timed out; this policy does not retry timeouts (retry by hand)"
	case ErrClassRefused:
		return "target address is not allowed"
	case ErrClassTemplate:
		return "the action's template failed for this event; fix the channel's template, then retry by hand"
	}
	return fmt.Sprintf("status %d is not retried by the %s policy", o.StatusCode, p.Name)
}

// Jitter adds up to a tenth of d, drawn from frac in [0,1): jitter only ever
// delays a retry, never brings it forward.
func Jitter(d time.Duration, frac float64) time.Duration {
	return d + time.Duration(float64(d)/10*frac)
}
