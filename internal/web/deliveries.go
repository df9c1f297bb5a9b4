package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

func (s *Server) routesDeliveries(mux *http.ServeMux) {
	mux.Handle("GET /t/{tenant}/deliveries", s.authed(s.deliveriesPage))
	mux.Handle("GET /t/{tenant}/deliveries/{id}", s.authed(s.deliveryPage))
	mux.Handle("POST /t/{tenant}/deliveries/{id}/retry", s.authed(s.retryDelivery))
}

// deliveryFilters is the filter form as the user typed it; the form shows
// these values back and the "Next page" link carries them on.
type deliveryFilters struct {
	Status    string
	ChannelID string
	EventType string
	Since     string // datetime-local, UTC
	Until     string
}

func readDeliveryFilters(r *http.Request) deliveryFilters {
	q := r.URL.Query()
	return deliveryFilters{
		Status:    strings.TrimSpace(q.Get("status")),
		ChannelID: strings.TrimSpace(q.Get("channel_id")),
		EventType: strings.TrimSpace(q.Get("event_type")),
		Since:     strings.TrimSpace(q.Get("since")),
		Until:     strings.TrimSpace(q.Get("until")),
	}
}

// Set reports whether any filter narrows the list, for the empty state.
func (f deliveryFilters) Set() bool {
	return f.Status != "" || f.ChannelID != "" || f.EventType != "" || f.Since != "" || f.Until != ""
}

// form is the filters as a query string of the dashboard's own form.
func (f deliveryFilters) form() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"status": f.Status, "channel_id": f.ChannelID, "event_type": f.EventType, "since": f.Since, "until": f.Until} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

// api is the filters as the API's query: times become RFC 3339.
func (f deliveryFilters) api() url.Values {
	v := f.form()
	for _, k := range []string{"since", "until"} {
		if x := v.Get(k); x != "" {
			v.Set(k, localToRFC3339(x))
		}
	}
	return v
}

// localToRFC3339 turns a datetime-local value, read as UTC, into RFC 3339.
// Anything else passes through unchanged so the API's 400 explains it.
func localToRFC3339(v string) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02T15:04:05.000"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return v
}

// eventTypeOption is the part of a tenant's event type the pages use.
type eventTypeOption struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Enabled bool   `json:"enabled"`
}

// tenantChannels lists the tenant's channels (up to the API's page maximum,
// plenty for a select) and a map of id → name for the tables.
func (s *Server) tenantChannels(r *http.Request, sess *session, t string) ([]herald.Channel, map[string]string, error) {
	var lst list[herald.Channel]
	if err := s.call(r, sess, http.MethodGet, tenantAPI(t)+"/channels?limit=500", nil, &lst); err != nil {
		return nil, nil, err
	}
	names := make(map[string]string, len(lst.Data))
	for _, c := range lst.Data {
		names[c.ID] = c.Name
	}
	return lst.Data, names, nil
}

type deliveriesData struct {
	Filters    deliveryFilters
	Channels   []herald.Channel
	Types      []eventTypeOption
	Deliveries []herald.Delivery
	// ChannelNames maps channel id → name; a missing id was deleted.
	ChannelNames map[string]string
	NextURL      string
	// FirstURL is the first page with the same filters, once paged.
	FirstURL string
	// LiveURL, on the first page, is what the log polls (through htmx) to
	// show new deliveries and settle pending ones without a reload.
	LiveURL string
}

func (s *Server) deliveriesPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	base := tenantAPI(t)
	f := readDeliveryFilters(r)
	d := &deliveriesData{Filters: f}
	if r.URL.Query().Get("cursor") != "" {
		d.FirstURL = "/t/" + url.PathEscape(t) + "/deliveries?" + f.form().Encode()
	} else {
		d.LiveURL = r.URL.RequestURI()
	}
	p := &page{Title: "Deliveries", Nav: "deliveries", Session: sess, TenantID: t, Data: d}

	var err error
	if d.Channels, d.ChannelNames, err = s.tenantChannels(r, sess, t); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	var types list[eventTypeOption]
	if err := s.call(r, sess, http.MethodGet, base+"/event-types", nil, &types); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	d.Types = types.Data

	q := f.api()
	q.Set("limit", "50")
	if c := r.URL.Query().Get("cursor"); c != "" {
		q.Set("cursor", c)
	}
	var lst list[herald.Delivery]
	if err := s.call(r, sess, http.MethodGet, base+"/deliveries?"+q.Encode(), nil, &lst); err != nil {
		// A filter the API refuses is the user's to fix: show why above
		// the form instead of leaving the page.
		var aerr *apiError
		if errors.As(err, &aerr) && (aerr.Status == http.StatusBadRequest || aerr.Status == http.StatusUnprocessableEntity) {
			p.Error, p.Fields = fieldErrors(err)
			s.render(w, r, aerr.Status, "deliveries", p)
			return
		}
		s.fail(w, r, sess, err)
		return
	}
	d.Deliveries = lst.Data
	if lst.NextCursor != nil {
		next := f.form()
		next.Set("cursor", *lst.NextCursor)
		d.NextURL = "/t/" + url.PathEscape(t) + "/deliveries?" + next.Encode()
	}
	s.render(w, r, http.StatusOK, "deliveries", p)
}

type deliveryData struct {
	Delivery    herald.Delivery
	Attempts    []herald.Attempt
	ChannelName string // empty when the channel was deleted
	CanRetry    bool
}

// loadDelivery fetches a delivery with its attempt log and channel name.
func (s *Server) loadDelivery(r *http.Request, sess *session, t, id string) (*deliveryData, error) {
	var det struct {
		herald.Delivery
		AttemptLog []herald.Attempt `json:"attempt_log"`
	}
	base := tenantAPI(t)
	if err := s.call(r, sess, http.MethodGet, base+"/deliveries/"+url.PathEscape(id), nil, &det); err != nil {
		return nil, err
	}
	d := &deliveryData{Delivery: det.Delivery, Attempts: det.AttemptLog,
		CanRetry: det.Status == herald.StatusSucceeded || det.Status == herald.StatusFailed}
	var ch herald.Channel
	err := s.call(r, sess, http.MethodGet, base+"/channels/"+url.PathEscape(det.ChannelID), nil, &ch)
	var aerr *apiError
	switch {
	case err == nil:
		d.ChannelName = ch.Name
	case errors.As(err, &aerr) && aerr.Status == http.StatusNotFound:
		// Deliveries outlive a deleted channel; the page says so.
	default:
		return nil, err
	}
	return d, nil
}

func (s *Server) deliveryPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	d, err := s.loadDelivery(r, sess, t, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, r, http.StatusOK, "delivery", &page{Title: "Delivery", Nav: "deliveries", Session: sess, TenantID: t, Data: d})
}

// retryDelivery makes one attempt now through the API, which waits for the
// receiver's answer, and reports that answer after redirecting back.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	id := r.PathValue("id")
	var res struct {
		Delivery herald.Delivery `json:"delivery"`
		Attempt  herald.Attempt  `json:"attempt"`
	}
	err := s.call(r, sess, http.MethodPost, tenantAPI(t)+"/deliveries/"+url.PathEscape(id)+"/retry", nil, &res)
	var aerr *apiError
	if errors.As(err, &aerr) && aerr.Status == http.StatusConflict {
		// Still pending, already being attempted or its channel is off:
		// show the API's reason on the delivery's own page.
		d, lerr := s.loadDelivery(r, sess, t, id)
		if lerr != nil {
			s.fail(w, r, sess, lerr)
			return
		}
		s.render(w, r, http.StatusConflict, "delivery", &page{Title: "Delivery", Nav: "deliveries", Session: sess, TenantID: t,
			Error: "Could not retry: " + aerr.Error(), Data: d})
		return
	}
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	to := "/t/" + url.PathEscape(t) + "/deliveries/" + url.PathEscape(id)
	if res.Delivery.Status != herald.StatusSucceeded {
		doneBadly(w, r, to, retryMessage(res.Delivery, res.Attempt))
		return
	}
	done(w, r, to, retryMessage(res.Delivery, res.Attempt))
}

// retryMessage sums up a manual attempt in one line.
func retryMessage(d herald.Delivery, a herald.Attempt) string {
	if d.Status == herald.StatusSucceeded {
		return fmt.Sprintf("Retried: %d in %d ms.", a.StatusCode, a.DurationMS)
	}
	var why []string
	if a.StatusCode != 0 {
		why = append(why, fmt.Sprintf("%d in %d ms", a.StatusCode, a.DurationMS))
	}
	if a.Error != "" {
		why = append(why, a.Error)
	} else if d.LastError != "" {
		why = append(why, d.LastError)
	}
	if len(why) == 0 {
		why = append(why, "the receiver did not accept it")
	}
	return "Retry failed: " + strings.Join(why, "; ") + "."
}
