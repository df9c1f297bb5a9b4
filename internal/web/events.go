package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/heraldhq/herald"
)

func (s *Server) routesEvents(mux *http.ServeMux) {
	mux.Handle("GET /t/{tenant}/events", s.authed(s.eventsPage))
	mux.Handle("GET /t/{tenant}/events/{id}", s.authed(s.eventPage))
}

type eventsData struct {
	Q       string
	Events  []herald.Event
	NextURL string
	Paged   bool // this is not the first page
}

// eventsPage lists events, newest first. The one search box takes either
// an event id, which opens that event, or a type name to filter by.
func (s *Server) eventsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if strings.HasPrefix(q, "evt_") {
		http.Redirect(w, r, "/t/"+url.PathEscape(t)+"/events/"+url.PathEscape(q), http.StatusSeeOther)
		return
	}
	cursor := r.URL.Query().Get("cursor")
	d := &eventsData{Q: q, Paged: cursor != ""}
	p := &page{Title: "Events", Nav: "events", Session: sess, TenantID: t, Data: d}

	api := url.Values{"limit": {"50"}}
	if q != "" {
		api.Set("type", q)
	}
	if cursor != "" {
		api.Set("cursor", cursor)
	}
	var lst list[herald.Event]
	if err := s.call(r, sess, http.MethodGet, tenantAPI(t)+"/events?"+api.Encode(), nil, &lst); err != nil {
		var aerr *apiError
		if errors.As(err, &aerr) && (aerr.Status == http.StatusBadRequest || aerr.Status == http.StatusUnprocessableEntity) {
			p.Error, p.Fields = fieldErrors(err)
			s.render(w, r, aerr.Status, "events", p)
			return
		}
		s.fail(w, r, sess, err)
		return
	}
	d.Events = lst.Data
	if lst.NextCursor != nil {
		next := url.Values{"cursor": {*lst.NextCursor}}
		if q != "" {
			next.Set("q", q)
		}
		d.NextURL = "/t/" + url.PathEscape(t) + "/events?" + next.Encode()
	}
	s.render(w, r, http.StatusOK, "events", p)
}

type eventData struct {
	Event      herald.Event
	Deliveries []herald.Delivery
	// ChannelNames maps channel id → name; a missing id was deleted.
	ChannelNames map[string]string
	// TypeOff says the tenant has this type turned off now, which explains
	// an event with no deliveries.
	TypeOff bool
}

func (s *Server) eventPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	base := tenantAPI(t)
	// The event's detail carries its deliveries (up to 500, newest first),
	// the same list as GET deliveries?event_id=, in one call.
	var det struct {
		herald.Event
		Deliveries []herald.Delivery `json:"deliveries"`
	}
	if err := s.call(r, sess, http.MethodGet, base+"/events/"+url.PathEscape(r.PathValue("id")), nil, &det); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	d := &eventData{Event: det.Event, Deliveries: det.Deliveries}
	if len(det.Deliveries) > 0 {
		var err error
		if _, d.ChannelNames, err = s.tenantChannels(r, sess, t); err != nil {
			s.fail(w, r, sess, err)
			return
		}
	} else {
		// Only to explain the empty list: a type that is gone or unreadable
		// just leaves the plainer explanation.
		var et eventTypeOption
		if err := s.call(r, sess, http.MethodGet, base+"/event-types/"+url.PathEscape(det.Type), nil, &et); err == nil {
			d.TypeOff = !et.Enabled
		}
	}
	s.render(w, r, http.StatusOK, "event", &page{Title: "Event", Nav: "events", Session: sess, TenantID: t, Data: d})
}
