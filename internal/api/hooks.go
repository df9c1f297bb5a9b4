package api

// REST Hooks: the subscribe/unsubscribe pattern of Zapier-like integration
// platforms. A hook is a channel of kind "hook" with exactly one
// subscription, made and removed in one call each; it is delivered exactly
// like a webhook, and a 410 Gone from its target deletes it (see
// internal/dispatch).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/channel"
	"github.com/heraldhq/herald/webhooks"
)

// hookInput is a hook subscribe body, as integration platforms send it.
type hookInput struct {
	TargetURL *string `json:"target_url"`
	Event     *string `json:"event"`
}

// hookAnswer describes a hook. ID is its channel's ID; Secret is set only
// in the answer to the subscribe call.
type hookAnswer struct {
	ID             string    `json:"id"`
	Event          string    `json:"event"`
	TargetURL      string    `json:"target_url"`
	ChannelID      string    `json:"channel_id"`
	SubscriptionID string    `json:"subscription_id"`
	Enabled        bool      `json:"enabled"`
	CreatedAt      time.Time `json:"created_at"`
	Secret         string    `json:"secret,omitempty"`
}

func newHookAnswer(c *herald.Channel, sub *herald.Subscription) hookAnswer {
	h := hookAnswer{ID: c.ID, TargetURL: c.URL, ChannelID: c.ID, Enabled: c.Enabled, CreatedAt: c.CreatedAt}
	if sub != nil {
		h.SubscriptionID = sub.ID
		if len(sub.EventTypes) > 0 {
			h.Event = sub.EventTypes[0]
		}
	}
	return h
}

// hookSampleSource marks a sample built from an event type's example, so a
// consumer can tell it from a real event.
const hookSampleSource = "sample"

// maxHookSamples is how many recent events a sample answer holds.
const maxHookSamples = 3

// validateHook checks a subscribe body: the target URL as a channel URL is
// checked (SSRF guard included), the event as a known type of the tenant,
// a group of known types ("order.*") or "*".
func (s *Server) validateHook(r *http.Request, tenantID string, in *hookInput) (target, event string, err error) {
	verr := &herald.ValidationError{}
	if in.TargetURL == nil || strings.TrimSpace(*in.TargetURL) == "" {
		verr.Add("target_url", "is required: the http(s) URL that receives the events")
	} else {
		target = strings.TrimSpace(*in.TargetURL)
		if len(target) > maxURLLength {
			verr.Add("target_url", "is %d characters long; use a URL of at most %d characters", len(target), maxURLLength)
		} else if err := s.Guard.CheckURL(r.Context(), target); err != nil {
			verr.Add("target_url", "%v", err)
		}
	}
	if in.Event == nil || strings.TrimSpace(*in.Event) == "" {
		verr.Add("event", "is required: an event type such as \"order.completed\", a group such as \"order.*\", or \"*\"")
	} else {
		event = strings.TrimSpace(*in.Event)
		known, err := s.knownHookEvent(r, tenantID, event)
		if err != nil {
			return "", "", err
		}
		if !known {
			verr.Add("event", "%q is not an event type of this tenant; GET /v1/tenants/%s/event-types lists them (a group such as \"order.*\" or \"*\" also works)", event, tenantID)
		}
	}
	return target, event, verr.Err()
}

// knownHookEvent reports whether event names a type the tenant can
// publish, a group holding at least one, or "*". A group with no types
// would never fire, which is surely a typo.
func (s *Server) knownHookEvent(r *http.Request, tenantID, event string) (bool, error) {
	if event == "*" {
		return true, nil
	}
	group, isGroup := strings.CutSuffix(event, ".*")
	if !isGroup {
		if !herald.ValidEventTypeName(event) {
			return false, nil
		}
		_, err := s.Publisher.EventType(r.Context(), tenantID, event)
		if errors.Is(err, herald.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	if !herald.ValidTypePattern(event) {
		return false, nil
	}
	if slices.Contains(s.Catalog.Groups(), group) {
		return true, nil
	}
	custom, err := s.Store.ListEventTypes(r.Context(), tenantID)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(custom, func(et herald.EventType) bool { return herald.GroupOf(et.Name) == group }), nil
}

// createHook subscribes: one channel of kind hook and its subscription,
// stored together.
func (s *Server) createHook(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	var in hookInput
	if !s.decode(w, r, maxBody, &in) {
		return
	}
	target, event, err := s.validateHook(r, tid, &in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Integration platforms rarely verify signatures, but the secret is
	// shown once here, as for a channel, so a careful consumer can.
	secret, err := webhooks.NewSecret()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.Clock.Now()
	c := &herald.Channel{
		ID: herald.NewID(herald.PrefixChannel, now), TenantID: tid, Kind: herald.ChannelHook,
		Name: "REST Hook: " + event, URL: target, Headers: map[string]string{},
		Policy: herald.StandardPolicy(), Enabled: true, MaxInFlight: herald.DefaultMaxInFlight,
		Secrets: []herald.Secret{{Key: secret}}, CreatedAt: now, UpdatedAt: now,
	}
	sub := &herald.Subscription{
		ID: herald.NewID(herald.PrefixSubscription, now), TenantID: tid, ChannelID: c.ID,
		EventTypes: []string{event}, Sources: []string{}, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.Store.CreateChannelWithSubscription(r.Context(), c, sub); err != nil {
		s.fail(w, r, err)
		return
	}
	h := newHookAnswer(c, sub)
	h.Secret = secret
	writeJSON(w, http.StatusCreated, h)
}

// listHooks lists the tenant's hooks, newest first, each with its event.
func (s *Server) listHooks(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	pg, ok := page(w, r)
	if !ok {
		return
	}
	list := func(pg herald.Page) ([]hookAnswer, error) {
		cs, err := s.Store.ListChannelsOfKind(r.Context(), tid, herald.ChannelHook, pg)
		if err != nil {
			return nil, err
		}
		// One indexed read per hook: lists are short and rarely asked for
		// (platforms keep the id they were given at subscribe).
		out := make([]hookAnswer, 0, len(cs))
		for i := range cs {
			subs, err := s.Store.ListSubscriptions(r.Context(), tid, herald.SubscriptionFilter{ChannelID: cs[i].ID}, herald.Page{Limit: 1})
			if err != nil {
				return nil, err
			}
			var sub *herald.Subscription
			if len(subs) > 0 {
				sub = &subs[0]
			}
			out = append(out, newHookAnswer(&cs[i], sub))
		}
		return out, nil
	}
	answerList(s, w, r, pg, list, func(h hookAnswer) string { return h.ID })
}

// deleteHook unsubscribes: the channel and its subscription go; the
// deliveries already made stay in the log.
func (s *Server) deleteHook(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("id")
	c, err := s.Store.GetChannel(r.Context(), tid, id)
	if err == nil && c.Kind != herald.ChannelHook {
		// Only hooks are removed here; a webhook channel has its own route.
		err = herald.ErrNotFound
	}
	if errors.Is(err, herald.ErrNotFound) {
		problem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no hook %q in tenant %q; GET /v1/tenants/%s/hooks lists them", id, tid, tid), nil)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.Store.DeleteChannel(r.Context(), tid, c.ID, s.Clock.Now()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// hookSamples answers what a hook of event_type receives, for a platform
// to show while its user maps fields: the tenant's most recent events of
// that type (channel tests left out), newest first, or, when there are
// none, one built from the type's example. Each is exactly the body a hook
// is sent.
func (s *Server) hookSamples(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	name := r.PathValue("event_type")
	et, err := s.Publisher.EventType(r.Context(), tid, name)
	if errors.Is(err, herald.ErrNotFound) {
		problem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no event type %q in tenant %q; GET /v1/tenants/%s/event-types lists them", name, tid, tid), nil)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// A few more than needed, so channel tests (source "test") can be
	// skipped: they carry the example, not real data.
	events, err := s.Store.ListEvents(r.Context(), tid, herald.EventFilter{Type: et.Name}, herald.Page{Limit: 20})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	samples := make([]json.RawMessage, 0, maxHookSamples)
	for i := range events {
		if events[i].Source == "test" {
			continue
		}
		samples = append(samples, channel.Body(&events[i]))
		if len(samples) == maxHookSamples {
			break
		}
	}
	if len(samples) == 0 {
		now := s.Clock.Now()
		data := et.Example
		if len(data) == 0 {
			data = json.RawMessage(`{}`)
		}
		e := herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: tid, Type: et.Name, Source: hookSampleSource,
			OccurredAt: now, Data: data, CreatedAt: now}
		samples = append(samples, channel.Body(&e))
	}
	writeJSON(w, http.StatusOK, samples)
}
