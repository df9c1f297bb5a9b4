package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/filter"
	"github.com/heraldhq/herald/webhooks"
)

// SecretOverlap is how long a rotated-out secret keeps signing.
const SecretOverlap = 24 * time.Hour

// maxActiveSecrets bounds a channel's signing secrets: the current one and
// the most recent rotated-out ones still in their overlap.
const maxActiveSecrets = 3

// maxURLLength bounds a channel's URL, which is stored and sent with every
// delivery.
const maxURLLength = 4096

// channelInput is a channel create or patch body; nil means "not sent".
type channelInput struct {
	Kind            *string            `json:"kind"`
	Name            *string            `json:"name"`
	URL             *string            `json:"url"`
	Policy          json.RawMessage    `json:"policy"`
	TimeoutS        *int               `json:"timeout_s"`
	Headers         *map[string]string `json:"headers"`
	Enabled         *bool              `json:"enabled"`
	DisabledReason  *string            `json:"disabled_reason"`
	MaxInFlight     *int               `json:"max_in_flight"`
	RateLimitPerSec *float64           `json:"rate_limit_per_sec"`
	Secret          *string            `json:"secret"`
	// Preset is a shorthand for action.preset (actions.go).
	Preset *string      `json:"preset"`
	Action *actionInput `json:"action"`
}

// reservedHeaders are set by Herald on every request and cannot be
// overridden per channel.
var reservedHeaders = []string{"Content-Type", "Content-Length", "Host", "User-Agent", "Connection", "Transfer-Encoding",
	webhooks.HeaderID, webhooks.HeaderTimestamp, webhooks.HeaderSignature}

// apply validates in and writes it onto c.
func (s *Server) apply(ctx context.Context, c *herald.Channel, in *channelInput, creating bool) error {
	verr := &herald.ValidationError{}
	// Sending back the kind a channel has (as a client that saves what it
	// read does) changes nothing.
	kindGiven := in.Kind != nil && (creating || *in.Kind != c.Kind)
	if kindGiven && *in.Kind == herald.ChannelHook {
		// A hook is a channel with its one subscription, made in one call.
		verr.Add("kind", "a \"hook\" is made through POST /v1/tenants/{tenant}/hooks, which subscribes it too; use \"webhook\" here")
	} else if kindGiven && *in.Kind != herald.ChannelWebhook && *in.Kind != herald.ChannelAction {
		verr.Add("kind", "use \"webhook\" or \"action\"")
	} else if kindGiven && !creating {
		verr.Add("kind", "cannot be changed; create a new channel of kind %q", *in.Kind)
	}
	if in.Name != nil {
		c.Name = strings.TrimSpace(*in.Name)
	}
	if c.Name == "" {
		verr.Add("name", "is required: 1 to 200 characters")
	} else if len(c.Name) > 200 {
		verr.Add("name", "is %d characters long; use at most 200", len(c.Name))
	}
	if in.URL != nil {
		c.URL = strings.TrimSpace(*in.URL)
		if len(c.URL) > maxURLLength {
			verr.Add("url", "is %d characters long; use a URL of at most %d characters", len(c.URL), maxURLLength)
		} else if c.Kind == herald.ChannelAction {
			// May hold expressions or be a preset's base URL: checked by applyAction.
		} else if err := s.Guard.CheckURL(ctx, c.URL); err != nil {
			verr.Add("url", "%v", err)
		}
	} else if creating && c.Kind != herald.ChannelAction {
		verr.Add("url", "is required: the http(s) URL that receives the webhooks")
	}
	if !isNull(in.Policy) {
		var pol herald.Policy
		if err := json.Unmarshal(in.Policy, &pol); err != nil {
			verr.Fields = append(verr.Fields, policyError(in.Policy, err))
		} else if err := pol.Validate("policy"); err != nil {
			var pv *herald.ValidationError
			errors.As(err, &pv)
			verr.Fields = append(verr.Fields, pv.Fields...)
		} else {
			c.Policy = pol
		}
	}
	if in.TimeoutS != nil {
		if *in.TimeoutS < 0 || *in.TimeoutS > herald.MaxTimeoutS {
			verr.Add("timeout_s", "must be between 1 and %d seconds, or 0 for the policy's default", herald.MaxTimeoutS)
		}
		c.TimeoutS = *in.TimeoutS
	}
	if in.Headers != nil {
		h := map[string]string{}
		if len(*in.Headers) > 32 {
			verr.Add("headers", "at most 32 extra headers are allowed")
		}
		for k, v := range *in.Headers {
			name := textproto.CanonicalMIMEHeaderKey(k)
			switch {
			case !validHeaderName(k):
				verr.Add("headers."+k, "is not a valid header name; use letters, digits and '-', such as X-Api-Key")
			case slices.ContainsFunc(reservedHeaders, func(r string) bool { return strings.EqualFold(r, k) }):
				verr.Add("headers."+k, "is set by Herald and cannot be overridden; remove it")
			case strings.ContainsAny(v, "\r\n\x00") || len(v) > 4096:
				verr.Add("headers."+k, "value must be one line of at most 4096 characters")
			default:
				h[name] = v
			}
		}
		c.Headers = h
	}
	if in.Enabled != nil {
		c.Enabled = *in.Enabled
		switch {
		case c.Enabled:
			c.DisabledReason = ""
		case in.DisabledReason != nil && len(*in.DisabledReason) > 200:
			verr.Add("disabled_reason", "must be at most 200 characters")
		case in.DisabledReason != nil && *in.DisabledReason != "":
			c.DisabledReason = *in.DisabledReason
		default:
			c.DisabledReason = herald.DisabledManual
		}
	}
	if in.MaxInFlight != nil {
		if *in.MaxInFlight < 1 || *in.MaxInFlight > herald.MaxMaxInFlight {
			verr.Add("max_in_flight", "must be between 1 and %d", herald.MaxMaxInFlight)
		}
		c.MaxInFlight = *in.MaxInFlight
	}
	if in.RateLimitPerSec != nil {
		// Below one request in 1,000 s a rate is a stopped channel: disable it instead.
		if r := *in.RateLimitPerSec; r < 0 || r > 100000 || (r > 0 && r < 0.001) {
			verr.Add("rate_limit_per_sec", "must be 0 (no limit) or between 0.001 and 100000 requests a second")
		}
		c.RateLimitPerSec = *in.RateLimitPerSec
	}
	if in.Secret != nil {
		if c.Kind == herald.ChannelAction {
			verr.Add("secret", "action channels do not sign their requests; put API tokens in action.secrets and read them in action.headers as {{ secrets.<name> }}")
		} else if !creating {
			verr.Add("secret", "cannot be patched; use POST …/rotate-secret")
		} else if _, err := webhooks.DecodeSecret(*in.Secret); err != nil {
			verr.Add("secret", "%v", err)
		}
	}
	if c.Kind == herald.ChannelAction {
		s.applyAction(ctx, c, in, creating, verr)
	} else if in.Action != nil || in.Preset != nil {
		verr.Add("action", "is only for channels of kind \"action\"")
	}
	return verr.Err()
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, r := range k {
		if r > 126 || r <= 32 || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}

type channelWithSecret struct {
	*herald.Channel
	Secret string `json:"secret"`
}

func (s *Server) createChannel(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	var in channelInput
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	now := s.Clock.Now()
	c := &herald.Channel{
		ID: herald.NewID(herald.PrefixChannel, now), TenantID: tid, Kind: herald.ChannelWebhook,
		Policy: herald.StandardPolicy(), Enabled: true, MaxInFlight: herald.DefaultMaxInFlight,
		Headers: map[string]string{}, CreatedAt: now, UpdatedAt: now,
	}
	if (in.Kind != nil && *in.Kind == herald.ChannelAction) || (in.Kind == nil && (in.Preset != nil || in.Action != nil)) {
		c.Kind = herald.ChannelAction
	}
	if err := s.apply(r.Context(), c, &in, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if c.Kind == herald.ChannelAction {
		// Nothing to sign with: the answer carries no secret.
		if err := s.Store.CreateChannel(r.Context(), c); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, c)
		return
	}
	secret := ""
	if in.Secret != nil {
		secret = normalizeSecret(*in.Secret)
	} else {
		var err error
		if secret, err = webhooks.NewSecret(); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	c.Secrets = []herald.Secret{{Key: secret}}
	if err := s.Store.CreateChannel(r.Context(), c); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, channelWithSecret{Channel: c, Secret: secret})
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	pg, ok := page(w, r)
	if !ok {
		return
	}
	answerList(s, w, r, pg, func(pg herald.Page) ([]herald.Channel, error) { return s.Store.ListChannels(r.Context(), tid, pg) },
		func(c herald.Channel) string { return c.ID })
}

// channel loads {id} of the tenant, answering 404 itself.
func (s *Server) channel(w http.ResponseWriter, r *http.Request, p principal) (*herald.Channel, bool) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return nil, false
	}
	c, err := s.Store.GetChannel(r.Context(), tid, r.PathValue("id"))
	return c, s.found(w, r, err, "channel", tid)
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, p principal) {
	if c, ok := s.channel(w, r, p); ok {
		writeJSON(w, http.StatusOK, c)
	}
}

func (s *Server) patchChannel(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := s.channel(w, r, p)
	if !ok {
		return
	}
	var in channelInput
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	if err := s.apply(r.Context(), c, &in, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c.UpdatedAt = s.Clock.Now()
	if err := s.Store.UpdateChannel(r.Context(), c); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) deleteChannel(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := s.channel(w, r, p)
	if !ok {
		return
	}
	if err := s.Store.DeleteChannel(r.Context(), c.TenantID, c.ID, s.Clock.Now()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request, p principal) {
	if c, ok := s.channel(w, r, p); ok {
		writeJSON(w, http.StatusOK, map[string]string{"secret": c.CurrentSecret()})
	}
}

func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := s.channel(w, r, p)
	if !ok {
		return
	}
	if c.Kind == herald.ChannelAction {
		s.fail(w, r, &herald.ConflictError{Detail: "action channels do not sign their requests; change their tokens with PATCH {\"action\": {\"secrets\": {…}}}"})
		return
	}
	var in struct {
		Secret string `json:"secret"`
	}
	if r.ContentLength != 0 && !s.decode(w, r, maxBody, &in) {
		return
	}
	if in.Secret == "" {
		var err error
		if in.Secret, err = webhooks.NewSecret(); err != nil {
			s.fail(w, r, err)
			return
		}
	} else if _, err := webhooks.DecodeSecret(in.Secret); err != nil {
		s.fail(w, r, herald.Invalid("secret", "%v", err))
		return
	}
	in.Secret = normalizeSecret(in.Secret)
	now := s.Clock.Now()
	expires := now.Add(SecretOverlap)
	next := []herald.Secret{{Key: in.Secret}}
	for _, old := range c.Secrets {
		if old.ExpiresAt == nil {
			old.ExpiresAt = &expires
		}
		// Every active secret signs every request, so repeated rotations
		// must not pile them up: keep the newest few.
		if old.ExpiresAt.After(now) && len(next) < maxActiveSecrets {
			next = append(next, old)
		}
	}
	c.Secrets, c.UpdatedAt = next, now
	if err := s.Store.UpdateChannel(r.Context(), c); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"secret": in.Secret, "previous_expires_at": expires})
}

func (s *Server) testChannel(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := s.channel(w, r, p)
	if !ok {
		return
	}
	var in struct {
		EventType string `json:"event_type"`
	}
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	if in.EventType == "" {
		s.fail(w, r, herald.Invalid("event_type", "is required: the type whose example payload to send, e.g. \"payment.succeeded\""))
		return
	}
	et, err := s.Publisher.EventType(r.Context(), c.TenantID, in.EventType)
	if errors.Is(err, herald.ErrNotFound) {
		s.fail(w, r, herald.Invalid("event_type", "unknown event type %q; GET /v1/tenants/%s/event-types lists the known ones", in.EventType, c.TenantID))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !c.Enabled {
		s.fail(w, r, &herald.ConflictError{Detail: fmt.Sprintf("channel is disabled (%s); enable it first", c.DisabledReason)})
		return
	}
	e, deliveryID, err := s.Publisher.PublishTest(r.Context(), c.TenantID, et, c.ID, c.Timeout()+time.Minute)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.Store.GetDelivery(r.Context(), c.TenantID, deliveryID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	comp, err := s.Dispatcher.Attempt(context.WithoutCancel(r.Context()), herald.Claim{Delivery: *d, Event: *e, Channel: c}, herald.TriggerTest)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, attemptAnswer{Delivery: comp.Delivery, Attempt: comp.Attempt})
}

// attemptAnswer answers a synchronous attempt (test, manual retry).
type attemptAnswer struct {
	Delivery herald.Delivery `json:"delivery"`
	Attempt  herald.Attempt  `json:"attempt"`
}

func (s *Server) recoverChannel(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := s.channel(w, r, p)
	if !ok {
		return
	}
	var in struct {
		Since *time.Time `json:"since"`
	}
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	if in.Since == nil {
		s.fail(w, r, herald.Invalid("since", "is required: an RFC 3339 time; failed deliveries created since then are queued again"))
		return
	}
	if !timeInRange(*in.Since) {
		s.fail(w, r, herald.Invalid("since", "%s", timeRangeDetail))
		return
	}
	n, err := s.Store.RecoverDeliveries(r.Context(), c.TenantID, c.ID, *in.Since, s.Clock.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Dispatcher.Wake()
	writeJSON(w, http.StatusAccepted, map[string]int{"requeued": n})
}

// subscriptionInput is a subscription create or patch body.
type subscriptionInput struct {
	ChannelID  *string   `json:"channel_id"`
	EventTypes *[]string `json:"event_types"`
	Sources    *[]string `json:"sources"`
	Filter     *string   `json:"filter"`
}

func (s *Server) applySub(r *http.Request, sub *herald.Subscription, in *subscriptionInput, creating bool) error {
	verr := &herald.ValidationError{}
	if in.ChannelID != nil {
		sub.ChannelID = *in.ChannelID
	} else if creating {
		verr.Add("channel_id", "is required: the channel to attach")
	}
	if in.EventTypes != nil {
		sub.EventTypes = *in.EventTypes
	}
	if len(sub.EventTypes) == 0 {
		verr.Add("event_types", "is required: event type names, \"group.*\" or \"*\"")
	}
	if len(sub.EventTypes) > 500 {
		verr.Add("event_types", "at most 500 entries are allowed")
	}
	for i, t := range sub.EventTypes {
		if !herald.ValidTypePattern(t) {
			verr.Add(fmt.Sprintf("event_types[%d]", i), "%q is not an event type; use a name such as \"payment.succeeded\", a group such as \"payment.*\", or \"*\"", t)
		}
	}
	if in.Sources != nil {
		sub.Sources = *in.Sources
	}
	if len(sub.Sources) > 500 {
		verr.Add("sources", "at most 500 entries are allowed")
	}
	for i, src := range sub.Sources {
		if !herald.ValidSource(src) {
			verr.Add(fmt.Sprintf("sources[%d]", i), "%q is not a source slug (a-z, 0-9, _ or -; e.g. admin, shop, funnel)", src)
		}
	}
	if in.Filter != nil {
		sub.Filter = strings.TrimSpace(*in.Filter)
		if sub.Filter != "" {
			if _, err := filter.Compile(sub.Filter); err != nil {
				verr.Add("filter", "%v", err)
			}
		}
	}
	return verr.Err()
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	var in subscriptionInput
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	now := s.Clock.Now()
	sub := &herald.Subscription{ID: herald.NewID(herald.PrefixSubscription, now), TenantID: tid, Sources: []string{}, CreatedAt: now, UpdatedAt: now}
	if err := s.applySub(r, sub, &in, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.Store.CreateSubscription(r.Context(), sub); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sub)
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	pg, ok := page(w, r)
	if !ok {
		return
	}
	f := herald.SubscriptionFilter{ChannelID: r.URL.Query().Get("channel_id")}
	list := func(pg herald.Page) ([]herald.Subscription, error) {
		return s.Store.ListSubscriptions(r.Context(), tid, f, pg)
	}
	answerList(s, w, r, pg, list, func(s herald.Subscription) string { return s.ID })
}

func (s *Server) subscription(w http.ResponseWriter, r *http.Request, p principal) (*herald.Subscription, bool) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return nil, false
	}
	sub, err := s.Store.GetSubscription(r.Context(), tid, r.PathValue("id"))
	return sub, s.found(w, r, err, "subscription", tid)
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request, p principal) {
	if sub, ok := s.subscription(w, r, p); ok {
		writeJSON(w, http.StatusOK, sub)
	}
}

func (s *Server) patchSubscription(w http.ResponseWriter, r *http.Request, p principal) {
	sub, ok := s.subscription(w, r, p)
	if !ok {
		return
	}
	var in subscriptionInput
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	if err := s.applySub(r, sub, &in, false); err != nil {
		s.fail(w, r, err)
		return
	}
	sub.UpdatedAt = s.Clock.Now()
	if err := s.Store.UpdateSubscription(r.Context(), sub); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request, p principal) {
	sub, ok := s.subscription(w, r, p)
	if !ok {
		return
	}
	if err := s.Store.DeleteSubscription(r.Context(), sub.TenantID, sub.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// normalizeSecret stores a secret given without its whsec_ prefix with it,
// the form receivers' libraries expect.
func normalizeSecret(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, webhooks.SecretPrefix) {
		s = webhooks.SecretPrefix + s
	}
	return s
}
