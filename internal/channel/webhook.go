// Package channel sends notifications to channels. Webhook is the first
// kind: a Standard Webhooks POST, signed with every active secret.
package channel

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/action"
	"github.com/heraldhq/herald/internal/target"
	"github.com/heraldhq/herald/webhooks"
	"github.com/valyala/fasthttp"
)

// Sender delivers webhook requests over one shared, keep-alive HTTP client
// whose dialer refuses disallowed addresses at connect time (client.go).
type Sender struct {
	client    *client
	userAgent string

	// signers keeps a Signer per set of active secrets: building one
	// decodes the secrets and sets up HMAC state each time.
	mu      sync.Mutex
	signers map[string]*webhooks.Signer

	// templates keeps action channels' compiled templates (action.go).
	tmu       sync.Mutex
	templates map[string]*action.Template
}

// maxSigners bounds the signer cache; past it, it starts over.
const maxSigners = 10_000

func (s *Sender) signer(secrets []string) (*webhooks.Signer, error) {
	key := strings.Join(secrets, " ")
	s.mu.Lock()
	sg, ok := s.signers[key]
	s.mu.Unlock()
	if ok {
		return sg, nil
	}
	sg, err := webhooks.NewSigner(secrets...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.signers == nil || len(s.signers) >= maxSigners {
		s.signers = map[string]*webhooks.Signer{}
	}
	s.signers[key] = sg
	s.mu.Unlock()
	return sg, nil
}

// NewSender returns a Sender whose connections are checked by guard.
func NewSender(guard *target.Guard, userAgent string) *Sender {
	return &Sender{client: newClient(guard), userAgent: userAgent}
}

// Close drops idle connections.
func (s *Sender) Close() { s.client.close() }

// Body encodes an event as the compact JSON body that is signed and sent:
// {"id","type","timestamp","source","data"}, in that order. It is written by hand because encoding/json
// re-validates and re-compacts the data on every send (a third of Send's
// time in the burst profile); the data was checked and compacted when it
// was published, and is stored as it came out.
func Body(e *herald.Event) []byte {
	b := make([]byte, 0, len(e.Data)+len(e.ID)+len(e.Type)+len(e.Source)+96)
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"timestamp":"`...)
	b = e.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	return append(b, '}')
}

// appendString appends s as a JSON string. IDs, types and sources are
// plain ASCII slugs, so the quick path is the usual one.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Result is what one request came to.
type Result struct {
	StatusCode int
	Body       string
	Duration   time.Duration
	ErrorClass string
	Error      string
	RetryAfter time.Duration
}

// Outcome is the part of a Result a retry policy decides on.
func (r Result) Outcome() herald.Outcome {
	return herald.Outcome{StatusCode: r.StatusCode, ErrorClass: r.ErrorClass, RetryAfter: r.RetryAfter}
}

// Send POSTs event e to channel c, signed with its active secrets at now.
// ctx cancelling (shutdown) is reported as an error class of its own so the
// caller can release the delivery instead of recording an attempt.
func (s *Sender) Send(ctx context.Context, c *herald.Channel, e *herald.Event, now time.Time) Result {
	if c.Kind == herald.ChannelAction {
		return s.sendAction(ctx, c, e)
	}
	body := Body(e)
	signer, err := s.signer(c.ActiveSecrets(now))
	if err != nil {
		return Result{ErrorClass: herald.ErrClassConnect, Error: "channel secret: " + err.Error()}
	}
	req := newRequest(http.MethodPost, c.URL, c.Headers)
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetContentType("application/json")
	req.Header.SetUserAgent(s.userAgent)
	ts := time.Now()
	req.Header.Set(webhooks.HeaderID, e.ID)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(webhooks.HeaderSignature, signer.Sign(e.ID, ts, body))
	req.SetBodyRaw(body)
	return s.client.do(ctx, req, c.Timeout())
}

// validUTF8 makes a body cut at MaxResponseBody valid UTF-8 that still fits
// in MaxResponseBody: a rune the cut split is dropped, and replacing invalid
// bytes (which may grow the text) is followed by a cut at a rune boundary.
func validUTF8(b []byte) string {
	if len(b) >= herald.MaxResponseBody {
		i := len(b) - 1
		for i > 0 && len(b)-i < utf8.UTFMax && !utf8.RuneStart(b[i]) {
			i--
		}
		if !utf8.FullRune(b[i:]) {
			b = b[:i]
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	for len(s) > herald.MaxResponseBody {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		// Bounded so a huge value cannot overflow; the policy caps it anyway.
		return time.Duration(max(0, min(n, 7*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
