package web

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// The channels pages are where a tenant's webhooks go: the list with a
// create form, and one page per channel with its settings, signing secret,
// a test send, its recent health and a way to requeue what failed while the
// receiver was down. Everything goes through the REST API, so a refused URL
// or a bad limit is shown in the API's own words next to the field.

func (s *Server) routesChannels(mux *http.ServeMux) {
	mux.Handle("GET /t/{tenant}/channels", s.authed(s.channelsPage))
	mux.Handle("POST /t/{tenant}/channels", s.authed(s.channelCreate))
	// More specific than …/channels/{id}, so it never reaches channelEdit.
	mux.Handle("POST /t/{tenant}/channels/actions", s.authed(s.channelCreateAction))
	mux.Handle("GET /t/{tenant}/channels/{id}", s.authed(s.channelPage))
	mux.Handle("POST /t/{tenant}/channels/{id}", s.authed(s.channelEdit))
	mux.Handle("POST /t/{tenant}/channels/{id}/enable", s.authed(s.channelSetEnabled(true)))
	mux.Handle("POST /t/{tenant}/channels/{id}/disable", s.authed(s.channelSetEnabled(false)))
	mux.Handle("POST /t/{tenant}/channels/{id}/delete", s.authed(s.channelDelete))
	mux.Handle("POST /t/{tenant}/channels/{id}/rotate", s.authed(s.channelRotate))
	mux.Handle("POST /t/{tenant}/channels/{id}/test", s.authed(s.channelTest))
	mux.Handle("POST /t/{tenant}/channels/{id}/recover", s.authed(s.channelRecover))
}

// Policy choices of the forms. "none" is a custom policy without retries;
// "custom" stands for a channel's other custom policy (set through the
// API), which the forms keep as it is rather than offer to edit.
const (
	chanPolicyNone   = "none"
	chanPolicyCustom = "custom"
)

// chanPolicyChoice is the form's name for a channel's policy.
func chanPolicyChoice(p herald.Policy) string {
	switch {
	case p.Name == herald.PolicyStandard || p.Name == herald.PolicyPostback:
		return p.Name
	case len(p.DelaysS) == 0:
		return chanPolicyNone
	}
	return chanPolicyCustom
}

// chanPolicyLabel describes a policy for people.
func chanPolicyLabel(p herald.Policy) string {
	switch chanPolicyChoice(p) {
	case herald.PolicyStandard:
		return "Standard"
	case herald.PolicyPostback:
		return "Postback"
	case chanPolicyNone:
		return "No retries"
	}
	return fmt.Sprintf("Custom (%d retries)", len(p.DelaysS))
}

// chanPolicyBody is what the API takes for a form's policy choice; ok is
// false for "custom", which is left out so the API keeps the policy.
func chanPolicyBody(choice string) (any, bool) {
	switch choice {
	case chanPolicyNone:
		return map[string][]int{"delays_s": {}}, true
	case chanPolicyCustom:
		return nil, false
	}
	// Unknown names go to the API as they are: it says what it accepts.
	return choice, true
}

// chanReason explains a disabled reason Herald sets itself.
func chanReason(reason string) string {
	switch reason {
	case herald.DisabledGone:
		return "The receiver answered 410 Gone, so Herald turned the channel off."
	case herald.DisabledManual:
		return "Turned off by hand."
	case "":
		return ""
	}
	return reason
}

// rotatedLayout is how a rotation's overlap end travels in the URL.
const rotatedLayout = "2006-01-02 15:04 UTC"

// chanRow is a channel as the list shows it.
type chanRow struct {
	herald.Channel
	PolicyLabel string
	Reason      string
}

// chanForm is what the create and edit forms hold, as typed.
type chanForm struct {
	Name, URL, Policy, TimeoutS, MaxInFlight, RateLimit string
}

// chanFormOf fills the edit form from a channel.
func chanFormOf(c herald.Channel) chanForm {
	f := chanForm{Name: c.Name, URL: c.URL, Policy: chanPolicyChoice(c.Policy), MaxInFlight: strconv.Itoa(c.MaxInFlight),
		RateLimit: strconv.FormatFloat(c.RateLimitPerSec, 'f', -1, 64)}
	if c.TimeoutS > 0 {
		f.TimeoutS = strconv.Itoa(c.TimeoutS)
	}
	return f
}

func chanFormFrom(r *http.Request) chanForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return chanForm{Name: v("name"), URL: v("url"), Policy: v("policy"), TimeoutS: v("timeout_s"), MaxInFlight: v("max_in_flight"), RateLimit: v("rate_limit_per_sec")}
}

// body turns the form into an API body. Numbers that do not parse are
// reported here, per field, as the API would; empty numbers are left out
// (the API's default), except on edit where an empty timeout or rate means
// "the policy's" and "no limit", both 0.
func (f chanForm) body(editing bool) (map[string]any, map[string]string) {
	in := map[string]any{"name": f.Name, "url": f.URL}
	if p, ok := chanPolicyBody(f.Policy); ok {
		in["policy"] = p
	}
	bad := map[string]string{}
	num := func(field, v string, whole bool, emptyZero bool) {
		if v == "" {
			if emptyZero {
				in[field] = 0
			}
			return
		}
		if whole {
			n, err := strconv.Atoi(v)
			if err != nil {
				bad[field] = "must be a whole number"
				return
			}
			in[field] = n
			return
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			bad[field] = "must be a number, such as 5 or 0.5"
			return
		}
		in[field] = x
	}
	num("timeout_s", f.TimeoutS, true, editing)
	num("max_in_flight", f.MaxInFlight, true, false)
	num("rate_limit_per_sec", f.RateLimit, false, editing)
	return in, bad
}

type chanList struct {
	Channels []chanRow
	Create   chanForm
	// Action is the action channel form (actions_form.go).
	Action actForm
}

// newChanList is the list page's two empty forms.
func newChanList() chanList {
	return chanList{Create: chanForm{Policy: herald.PolicyStandard}, Action: newActForm()}
}

func chanPage(t string) string { return "/t/" + url.PathEscape(t) + "/channels" }

func (s *Server) channelsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.renderChannels(w, r, sess, http.StatusOK, newChanList(), "", nil)
}

// renderChannels shows the list with d's forms as given (Channels is
// filled here).
func (s *Server) renderChannels(w http.ResponseWriter, r *http.Request, sess *session, status int, d chanList, msg string, fields map[string]string) {
	t := tenantOf(r, sess)
	chans, err := allPages[herald.Channel](s, r, sess, tenantAPI(t)+"/channels", nil)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	sort.SliceStable(chans, func(i, j int) bool { return strings.ToLower(chans[i].Name) < strings.ToLower(chans[j].Name) })
	d.Channels = nil
	for _, c := range chans {
		d.Channels = append(d.Channels, chanRow{Channel: c, PolicyLabel: chanPolicyLabel(c.Policy), Reason: chanReason(c.DisabledReason)})
	}
	s.render(w, r, status, "channels", &page{Title: "Channels", Nav: "channels", Session: sess, TenantID: t, Error: msg, Fields: fields, Data: d})
}

func (s *Server) channelCreate(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	form := chanFormFrom(r)
	in, bad := form.body(false)
	if len(bad) > 0 {
		d := newChanList()
		d.Create = form
		s.renderChannels(w, r, sess, http.StatusUnprocessableEntity, d, "Please fix the fields marked below.", bad)
		return
	}
	var c herald.Channel
	if err := s.call(r, sess, http.MethodPost, tenantAPI(t)+"/channels", in, &c); err != nil {
		if !formProblem(err) {
			s.fail(w, r, sess, err)
			return
		}
		msg, fields := fieldErrors(err)
		d := newChanList()
		d.Create = form
		s.renderChannels(w, r, sess, errStatus(err), d, msg, fields)
		return
	}
	// The create answer carries the secret; the channel's page shows it
	// once more on this redirect so it can be copied to the receiver.
	done(w, r, chanPage(t)+"/"+url.PathEscape(c.ID)+"?show_secret=1", "Channel created.")
}

// chanHealth sums up the channel's newest deliveries.
type chanHealth struct {
	Succeeded, Failed, Finished int
	Pending                     int
	PendingMore                 bool // more pending than one page counts
	Recent                      int  // deliveries looked at
}

// chanSub is a subscription of the channel, its types split into exact
// names (linked to their notification page) and patterns.
type chanSub struct {
	herald.Subscription
	Exact, Patterns []string
}

// chanTestResult is the answer of a test send.
type chanTestResult struct {
	Delivery herald.Delivery `json:"delivery"`
	Attempt  herald.Attempt  `json:"attempt"`
}

// chanDetail is everything the channel's page shows.
type chanDetail struct {
	Channel     herald.Channel
	PolicyLabel string
	Reason      string
	// CustomPolicy offers "keep the custom policy" in the edit form.
	CustomPolicy bool
	Edit         chanForm
	Secret       string
	SecretNote   string
	Health       chanHealth
	Subs         []chanSub
	EventTypes   []herald.EventType
	EventType    string // chosen in the test form
	Test         *chanTestResult
	Since        string // the recover form's time, as typed
}

// loadChannel gathers the channel's page; the secret only when asked for,
// so it is not in every page's HTML.
func (s *Server) loadChannel(r *http.Request, sess *session, t, id string, showSecret bool) (*chanDetail, error) {
	base := tenantAPI(t) + "/channels/" + url.PathEscape(id)
	d := &chanDetail{}
	if err := s.call(r, sess, http.MethodGet, base, nil, &d.Channel); err != nil {
		return nil, err
	}
	d.PolicyLabel, d.Reason, d.Edit = chanPolicyLabel(d.Channel.Policy), chanReason(d.Channel.DisabledReason), chanFormOf(d.Channel)
	d.CustomPolicy = d.Edit.Policy == chanPolicyCustom
	if showSecret {
		var sec struct {
			Secret string `json:"secret"`
		}
		if err := s.call(r, sess, http.MethodGet, base+"/secret", nil, &sec); err != nil {
			return nil, err
		}
		d.Secret = sec.Secret
	}
	var types list[herald.EventType]
	if err := s.call(r, sess, http.MethodGet, tenantAPI(t)+"/event-types", nil, &types); err != nil {
		return nil, err
	}
	d.EventTypes = types.Data
	sort.SliceStable(d.EventTypes, func(i, j int) bool { return d.EventTypes[i].Name < d.EventTypes[j].Name })
	if len(d.EventTypes) > 0 {
		d.EventType = d.EventTypes[0].Name
	}
	if err := s.loadHealth(r, sess, t, id, &d.Health); err != nil {
		return nil, err
	}
	subs, err := allPages[herald.Subscription](s, r, sess, tenantAPI(t)+"/subscriptions", url.Values{"channel_id": {id}})
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		if sub.ChannelID != id { // the API filters; this keeps the page right if it did not
			continue
		}
		cs := chanSub{Subscription: sub}
		for _, et := range sub.EventTypes {
			if strings.Contains(et, "*") {
				cs.Patterns = append(cs.Patterns, et)
			} else {
				cs.Exact = append(cs.Exact, et)
			}
		}
		d.Subs = append(d.Subs, cs)
	}
	// Offer a type the channel actually receives first, when there is one.
	for _, cs := range d.Subs {
		if len(cs.Exact) > 0 {
			d.EventType = cs.Exact[0]
			break
		}
	}
	// A day back is the usual "the receiver was down since yesterday".
	d.Since = s.cfg.Clock.Now().UTC().Add(-24 * time.Hour).Format("2006-01-02T15:04")
	return d, nil
}

// loadHealth counts the channel's last 100 deliveries by status, and its
// whole pending backlog up to one page.
func (s *Server) loadHealth(r *http.Request, sess *session, t, id string, h *chanHealth) error {
	var recent list[herald.Delivery]
	q := url.Values{"channel_id": {id}, "limit": {"100"}}
	if err := s.call(r, sess, http.MethodGet, tenantAPI(t)+"/deliveries?"+q.Encode(), nil, &recent); err != nil {
		return err
	}
	h.Recent = len(recent.Data)
	for _, d := range recent.Data {
		switch d.Status {
		case herald.StatusSucceeded:
			h.Succeeded++
		case herald.StatusFailed:
			h.Failed++
		}
	}
	h.Finished = h.Succeeded + h.Failed
	var pending list[herald.Delivery]
	q = url.Values{"channel_id": {id}, "status": {string(herald.StatusPending)}, "limit": {"500"}}
	if err := s.call(r, sess, http.MethodGet, tenantAPI(t)+"/deliveries?"+q.Encode(), nil, &pending); err != nil {
		return err
	}
	h.Pending = len(pending.Data)
	h.PendingMore = pending.NextCursor != nil && *pending.NextCursor != ""
	return nil
}

func (s *Server) channelPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t, id := tenantOf(r, sess), r.PathValue("id")
	d, err := s.loadChannel(r, sess, t, id, r.URL.Query().Get("show_secret") == "1")
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	// rotated is a time the rotation put in the URL; anything that is not
	// one is ignored, so a link cannot put other words here.
	if until, err := time.Parse(rotatedLayout, r.URL.Query().Get("rotated")); d.Secret != "" && err == nil {
		d.SecretNote = "This is the new secret. The previous one keeps signing until " + until.Format(rotatedLayout) + ", so receivers can switch over."
	}
	s.renderChannel(w, r, sess, http.StatusOK, d, "", nil)
}

func (s *Server) renderChannel(w http.ResponseWriter, r *http.Request, sess *session, status int, d *chanDetail, msg string, fields map[string]string) {
	title := d.Channel.Name
	if title == "" {
		title = d.Channel.ID
	}
	s.render(w, r, status, "channel", &page{Title: title, Nav: "channels", Session: sess, TenantID: tenantOf(r, sess), Error: msg, Fields: fields, Data: d})
}

// channelFormError shows a refused form on the channel's page, with what
// was typed kept by keep; other errors get the error page.
func (s *Server) channelFormError(w http.ResponseWriter, r *http.Request, sess *session, err error, keep func(*chanDetail)) {
	if !formProblem(err) {
		s.fail(w, r, sess, err)
		return
	}
	d, lerr := s.loadChannel(r, sess, tenantOf(r, sess), r.PathValue("id"), false)
	if lerr != nil {
		s.fail(w, r, sess, lerr)
		return
	}
	keep(d)
	msg, fields := fieldErrors(err)
	s.renderChannel(w, r, sess, errStatus(err), d, msg, fields)
}

func (s *Server) channelEdit(w http.ResponseWriter, r *http.Request, sess *session) {
	t, id := tenantOf(r, sess), r.PathValue("id")
	form := chanFormFrom(r)
	in, bad := form.body(true)
	var err error
	if len(bad) > 0 {
		err = chanLocalErrors(bad)
	} else {
		err = s.call(r, sess, http.MethodPatch, tenantAPI(t)+"/channels/"+url.PathEscape(id), in, nil)
	}
	if err != nil {
		s.channelFormError(w, r, sess, err, func(d *chanDetail) { d.Edit = form })
		return
	}
	done(w, r, chanPage(t)+"/"+url.PathEscape(id), "Channel saved.")
}

func (s *Server) channelSetEnabled(on bool) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, sess *session) {
		t, id := tenantOf(r, sess), r.PathValue("id")
		if err := s.call(r, sess, http.MethodPatch, tenantAPI(t)+"/channels/"+url.PathEscape(id), map[string]bool{"enabled": on}, nil); err != nil {
			s.fail(w, r, sess, err)
			return
		}
		msg := "Channel disabled: new events are no longer sent to it."
		if on {
			msg = "Channel enabled."
		}
		done(w, r, chanPage(t)+"/"+url.PathEscape(id), msg)
	}
}

func (s *Server) channelDelete(w http.ResponseWriter, r *http.Request, sess *session) {
	t, id := tenantOf(r, sess), r.PathValue("id")
	if err := s.call(r, sess, http.MethodDelete, tenantAPI(t)+"/channels/"+url.PathEscape(id), nil, nil); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	done(w, r, chanPage(t), "Channel deleted.")
}

func (s *Server) channelRotate(w http.ResponseWriter, r *http.Request, sess *session) {
	t, id := tenantOf(r, sess), r.PathValue("id")
	var ans struct {
		PreviousExpiresAt time.Time `json:"previous_expires_at"`
	}
	if err := s.call(r, sess, http.MethodPost, tenantAPI(t)+"/channels/"+url.PathEscape(id)+"/rotate-secret", nil, &ans); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	// The new secret is read back on the page rather than carried in the
	// URL, where it would land in history and logs.
	q := url.Values{"show_secret": {"1"}, "rotated": {ans.PreviousExpiresAt.UTC().Format(rotatedLayout)}}
	done(w, r, chanPage(t)+"/"+url.PathEscape(id)+"?"+q.Encode(), "Secret rotated.")
}

// channelTest sends the type's example and shows how the receiver
// answered. The answer is rendered, not redirected: it is a one-off result,
// and the attempt stays in the delivery log for later.
func (s *Server) channelTest(w http.ResponseWriter, r *http.Request, sess *session) {
	t, id := tenantOf(r, sess), r.PathValue("id")
	et := r.PostFormValue("event_type")
	var res chanTestResult
	err := s.call(r, sess, http.MethodPost, tenantAPI(t)+"/channels/"+url.PathEscape(id)+"/test", map[string]string{"event_type": et}, &res)
	if err != nil {
		s.channelFormError(w, r, sess, err, func(d *chanDetail) { d.EventType = et })
		return
	}
	d, err := s.loadChannel(r, sess, t, id, false)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	d.EventType, d.Test = et, &res
	s.renderChannel(w, r, sess, http.StatusOK, d, "", nil)
}

// chanSinceLayouts are what browsers send for datetime-local, with and
// without seconds.
var chanSinceLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339}

func (s *Server) channelRecover(w http.ResponseWriter, r *http.Request, sess *session) {
	t, id := tenantOf(r, sess), r.PathValue("id")
	raw := strings.TrimSpace(r.PostFormValue("since"))
	keep := func(d *chanDetail) { d.Since = raw }
	var since time.Time
	var err error
	for _, l := range chanSinceLayouts {
		// The form says the time is UTC; ParseInLocation makes it so.
		if since, err = time.ParseInLocation(l, raw, time.UTC); err == nil {
			break
		}
	}
	if err != nil {
		detail := "must be a date and time, such as 2026-11-24T00:00"
		if raw == "" {
			detail = "is required: failed deliveries created since then are queued again"
		}
		s.channelFormError(w, r, sess, chanLocalErrors(map[string]string{"since": detail}), keep)
		return
	}
	var ans struct {
		Requeued int `json:"requeued"`
	}
	if err := s.call(r, sess, http.MethodPost, tenantAPI(t)+"/channels/"+url.PathEscape(id)+"/recover", map[string]string{"since": since.UTC().Format(time.RFC3339)}, &ans); err != nil {
		s.channelFormError(w, r, sess, err, keep)
		return
	}
	msg := fmt.Sprintf("%d deliveries requeued.", ans.Requeued)
	if ans.Requeued == 1 {
		msg = "1 delivery requeued."
	}
	done(w, r, chanPage(t)+"/"+url.PathEscape(id), msg)
}

// chanLocalErrors is a form's own complaint shaped as the API's, so one
// path shows both.
func chanLocalErrors(fields map[string]string) error {
	aerr := &apiError{Status: http.StatusUnprocessableEntity, Title: "Invalid input"}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		aerr.Errors = append(aerr.Errors, fieldError{Field: k, Detail: fields[k]})
	}
	return aerr
}
