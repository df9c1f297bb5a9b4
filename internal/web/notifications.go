package web

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/heraldhq/herald"
)

// The notifications pages are the merchant's "System notifications": which
// event types are on, and which channels each one goes to. Attaching a
// channel to a type is a subscription with that one type; wider
// subscriptions (group.* or *, several types) are shown but edited elsewhere
// so this page never changes more than the one type it is about.

func (s *Server) routesNotifications(mux *http.ServeMux) {
	mux.Handle("GET /t/{tenant}/notifications", s.authed(s.notificationsPage))
	mux.Handle("GET /t/{tenant}/notifications/{type}", s.authed(s.notificationPage))
	mux.Handle("POST /t/{tenant}/notifications/{type}/toggle", s.authed(s.notificationToggle))
	mux.Handle("POST /t/{tenant}/notifications/{type}/attach", s.authed(s.notificationAttach))
	mux.Handle("POST /t/{tenant}/notifications/{type}/attachments/{id}", s.authed(s.notificationEdit))
	mux.Handle("POST /t/{tenant}/notifications/{type}/attachments/{id}/remove", s.authed(s.notificationRemove))
}

// notifSources are the sources offered as checkboxes, in the order the
// platforms name them. The API accepts any slug; a subscription's other
// sources are shown too so that saving does not drop them.
var notifSources = []notifSource{
	{"admin", "Admin"}, {"shop", "Shop"}, {"funnel", "Funnel"}, {"quote", "Quote"}, {"api", "API"},
}

type notifSource struct{ Value, Label string }

// notifType is an event type as the tenant sees it.
type notifType struct {
	herald.EventType
	Enabled bool `json:"enabled"`
}

// notifChannel is the part of a channel these pages show.
type notifChannel struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	URL     string `json:"url"`
	Enabled bool   `json:"enabled"`
}

type notifRow struct {
	notifType
	Channels int // distinct channels whose subscriptions cover the type
}

type notifList struct {
	Groups  []notifGroupOf[notifRow]
	Total   int
	Enabled int
}

// groupTitle turns a group name into a heading: "payment" → "Payments",
// "license_key" → "License keys".
func notifGroupTitle(g string) string {
	if g == "" {
		return "Other"
	}
	words := strings.ReplaceAll(g, "_", " ")
	switch {
	case strings.HasSuffix(words, "s"):
	case len(words) > 1 && strings.HasSuffix(words, "y") && !strings.ContainsAny(words[len(words)-2:len(words)-1], "aeiou"):
		words = words[:len(words)-1] + "ies"
	default:
		words += "s"
	}
	return strings.ToUpper(words[:1]) + words[1:]
}

// groupTypes groups types by their group, groups and types sorted by name,
// so custom types sit next to the built-in ones of their group.
func notifGroupTypes[T any](types []T, group func(T) string, name func(T) string) []notifGroupOf[T] {
	by := map[string][]T{}
	var keys []string
	for _, t := range types {
		g := group(t)
		if _, ok := by[g]; !ok {
			keys = append(keys, g)
		}
		by[g] = append(by[g], t)
	}
	sort.Strings(keys)
	out := make([]notifGroupOf[T], 0, len(keys))
	for _, k := range keys {
		ts := by[k]
		sort.SliceStable(ts, func(i, j int) bool { return name(ts[i]) < name(ts[j]) })
		out = append(out, notifGroupOf[T]{Name: k, Title: notifGroupTitle(k), Types: ts})
	}
	return out
}

type notifGroupOf[T any] struct {
	Name, Title string
	Types       []T
}

func (s *Server) notificationsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	var types list[notifType]
	if err := s.call(r, sess, http.MethodGet, tenantAPI(t)+"/event-types", nil, &types); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	subs, err := allPages[herald.Subscription](s, r, sess, tenantAPI(t)+"/subscriptions", nil)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	data := notifList{Total: len(types.Data)}
	rows := make([]notifRow, len(types.Data))
	for i, et := range types.Data {
		chans := map[string]bool{}
		for _, sub := range subs {
			if sub.MatchesType(et.Name) {
				chans[sub.ChannelID] = true
			}
		}
		rows[i] = notifRow{notifType: et, Channels: len(chans)}
		if et.Enabled {
			data.Enabled++
		}
	}
	data.Groups = notifGroupTypes(rows, func(r notifRow) string { return r.Group }, func(r notifRow) string { return r.Name })
	s.render(w, r, http.StatusOK, "notifications", &page{Title: "System notifications", Nav: "notifications", Session: sess, TenantID: t, Data: data})
}

// notificationToggle turns a type on or off, then goes back to the row (or
// to the type's own page when the form came from there).
func (s *Server) notificationToggle(w http.ResponseWriter, r *http.Request, sess *session) {
	t, name := tenantOf(r, sess), r.PathValue("type")
	on, err := strconv.ParseBool(r.PostFormValue("enabled"))
	if err != nil {
		s.render(w, r, http.StatusBadRequest, "error", &page{Title: "Bad request", Session: sess, TenantID: t, Error: "The form must say whether to turn the event type on or off."})
		return
	}
	if err := s.call(r, sess, http.MethodPatch, tenantAPI(t)+"/event-types/"+url.PathEscape(name), map[string]bool{"enabled": on}, nil); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	msg := name + " turned off."
	if on {
		msg = name + " turned on."
	}
	to := "/t/" + url.PathEscape(t) + "/notifications"
	if r.PostFormValue("return") == "detail" {
		to += "/" + url.PathEscape(name)
		done(w, r, to, msg)
		return
	}
	// The anchor brings the user back to the row they toggled.
	done(w, r, to+"#"+url.PathEscape("type-"+name), msg)
}

// notifAttachment is a subscription covering the page's type.
type notifAttachment struct {
	herald.Subscription
	Channel notifChannel // Name is empty when the channel is gone
	// Sources offered as checkboxes: the usual ones plus any the
	// subscription has.
	Choices []notifSource
	Note    string            // why a wider subscription is read-only here
	Fields  map[string]string // the API's complaints about an edit
}

// notifForm is what the attach form holds.
type notifForm struct {
	ChannelID string
	Sources   []string
	Filter    string
	Fields    map[string]string
}

type notifDetail struct {
	Type     notifType
	Exact    []notifAttachment
	Wider    []notifAttachment
	Channels []notifChannel
	Sources  []notifSource
	Attach   notifForm
}

// loadNotifDetail gathers the type, the subscriptions that cover it and the
// channels to choose from.
func (s *Server) loadNotifDetail(r *http.Request, sess *session, t, name string) (*notifDetail, error) {
	d := &notifDetail{Sources: notifSources}
	if err := s.call(r, sess, http.MethodGet, tenantAPI(t)+"/event-types/"+url.PathEscape(name), nil, &d.Type); err != nil {
		return nil, err
	}
	subs, err := allPages[herald.Subscription](s, r, sess, tenantAPI(t)+"/subscriptions", nil)
	if err != nil {
		return nil, err
	}
	if d.Channels, err = allPages[notifChannel](s, r, sess, tenantAPI(t)+"/channels", nil); err != nil {
		return nil, err
	}
	sort.SliceStable(d.Channels, func(i, j int) bool {
		return strings.ToLower(d.Channels[i].Name) < strings.ToLower(d.Channels[j].Name)
	})
	byID := map[string]notifChannel{}
	for _, c := range d.Channels {
		byID[c.ID] = c
	}
	for _, sub := range subs {
		if !sub.MatchesType(name) {
			continue
		}
		a := notifAttachment{Subscription: sub, Channel: byID[sub.ChannelID], Choices: notifSourceChoices(sub.Sources)}
		if len(sub.EventTypes) == 1 && sub.EventTypes[0] == name {
			d.Exact = append(d.Exact, a)
			continue
		}
		a.Note = "Read-only here: it also covers other event types, which an edit would change too."
		d.Wider = append(d.Wider, a)
	}
	if len(d.Channels) > 0 {
		d.Attach.ChannelID = d.Channels[0].ID
	}
	return d, nil
}

// sourceChoices is the usual sources followed by any others in have.
func notifSourceChoices(have []string) []notifSource {
	out := slices.Clone(notifSources)
	for _, h := range have {
		if !slices.ContainsFunc(out, func(c notifSource) bool { return c.Value == h }) {
			out = append(out, notifSource{h, h})
		}
	}
	return out
}

func (s *Server) notificationPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t, name := tenantOf(r, sess), r.PathValue("type")
	d, err := s.loadNotifDetail(r, sess, t, name)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.renderNotif(w, r, sess, http.StatusOK, d, "", nil)
}

func (s *Server) renderNotif(w http.ResponseWriter, r *http.Request, sess *session, status int, d *notifDetail, msg string, fields map[string]string) {
	title := d.Type.Title
	if title == "" {
		title = d.Type.Name
	}
	s.render(w, r, status, "notification", &page{Title: title, Nav: "notifications", Session: sess, TenantID: tenantOf(r, sess), Error: msg, Fields: fields, Data: d})
}

// formSources reads the checked sources; none checked means every source.
func notifFormSources(r *http.Request) []string {
	_ = r.ParseForm()
	out := []string{}
	for _, v := range r.PostForm["sources"] {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func (s *Server) notificationAttach(w http.ResponseWriter, r *http.Request, sess *session) {
	t, name := tenantOf(r, sess), r.PathValue("type")
	form := notifForm{ChannelID: r.PostFormValue("channel_id"), Sources: notifFormSources(r), Filter: r.PostFormValue("filter")}
	in := map[string]any{"event_types": []string{name}, "sources": form.Sources, "filter": form.Filter}
	if form.ChannelID != "" {
		in["channel_id"] = form.ChannelID // left out, the API says it is required
	}
	err := s.call(r, sess, http.MethodPost, tenantAPI(t)+"/subscriptions", in, nil)
	if err == nil {
		done(w, r, "/t/"+url.PathEscape(t)+"/notifications/"+url.PathEscape(name), "Channel attached to "+name+".")
		return
	}
	if !(formProblem(err) || errStatus(err) == http.StatusNotFound) {
		s.fail(w, r, sess, err)
		return
	}
	d, lerr := s.loadNotifDetail(r, sess, t, name)
	if lerr != nil {
		s.fail(w, r, sess, lerr)
		return
	}
	msg, fields := fieldErrors(err)
	form.Fields = fields
	d.Attach = form
	s.renderNotif(w, r, sess, errStatus(err), d, msg, fields)
}

func (s *Server) notificationEdit(w http.ResponseWriter, r *http.Request, sess *session) {
	t, name, id := tenantOf(r, sess), r.PathValue("type"), r.PathValue("id")
	sources, filter := notifFormSources(r), r.PostFormValue("filter")
	err := s.call(r, sess, http.MethodPatch, tenantAPI(t)+"/subscriptions/"+url.PathEscape(id), map[string]any{"sources": sources, "filter": filter}, nil)
	if err == nil {
		done(w, r, "/t/"+url.PathEscape(t)+"/notifications/"+url.PathEscape(name), "Attachment saved.")
		return
	}
	if !(formProblem(err) || errStatus(err) == http.StatusNotFound) {
		s.fail(w, r, sess, err)
		return
	}
	d, lerr := s.loadNotifDetail(r, sess, t, name)
	if lerr != nil {
		s.fail(w, r, sess, lerr)
		return
	}
	msg, fields := fieldErrors(err)
	// Keep what was typed in the row that failed, with its errors.
	for i := range d.Exact {
		if d.Exact[i].ID == id {
			d.Exact[i].Sources, d.Exact[i].Filter, d.Exact[i].Fields = sources, filter, fields
			d.Exact[i].Choices = notifSourceChoices(sources)
		}
	}
	s.renderNotif(w, r, sess, errStatus(err), d, msg, fields)
}

func (s *Server) notificationRemove(w http.ResponseWriter, r *http.Request, sess *session) {
	t, name, id := tenantOf(r, sess), r.PathValue("type"), r.PathValue("id")
	if err := s.call(r, sess, http.MethodDelete, tenantAPI(t)+"/subscriptions/"+url.PathEscape(id), nil, nil); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	done(w, r, "/t/"+url.PathEscape(t)+"/notifications/"+url.PathEscape(name), "Channel removed from "+name+".")
}
