package web

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/heraldhq/herald"
)

// The action channel form: a merchant makes a channel from a preset (a
// Slack-compatible chat message, or a Hipcall contact, company or task)
// by filling one form, without writing a template. The form posts what
// docs/actions.md shows for the API, and the API expands the preset.
//
// The API token is a secret: it goes from the form to the API and nowhere
// else. It is not kept in the form when the API refuses it (the page asks
// for it again), never put in a URL, and never logged.

// The Hipcall operations the form offers, in its order.
var actOperations = []struct{ Value, Label string }{
	{"create_contact", "Create a contact (for customer.created)"},
	{"create_company", "Create a company"},
	{"create_task", "Create a follow-up task (for order.completed)"},
}

// actForm is what the action form holds, as typed: everything but the
// token, which is never echoed back into a page.
type actForm struct {
	Name, Preset, URL, Operation string
	// TokenTyped says a token was sent with a form the API refused, so the
	// page can ask for it again.
	TokenTyped bool
}

func newActForm() actForm {
	return actForm{Preset: herald.PresetSlack, Operation: actOperations[0].Value}
}

// Operations lists the Hipcall operations for the template.
func (actForm) Operations() []struct{ Value, Label string } { return actOperations }

func actFormFrom(r *http.Request) (actForm, string) {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	token := v("token")
	return actForm{Name: v("name"), Preset: v("preset"), URL: v("url"), Operation: v("operation"), TokenTyped: token != ""}, token
}

// body is the API's create body for the form, as docs/actions.md shows it:
// for slack the incoming-webhook URL and nothing else; for hipcall the
// base URL (left out when empty: the API's default), the token and the
// operation. A preset that is neither is the form's own complaint, since
// an action without a preset would be a channel with no template.
func (f actForm) body(token string) (map[string]any, map[string]string) {
	in := map[string]any{"kind": herald.ChannelAction, "name": f.Name, "preset": f.Preset}
	switch f.Preset {
	case herald.PresetSlack:
		in["url"] = f.URL
	case herald.PresetHipcall:
		if f.URL != "" {
			in["url"] = f.URL
		}
		act := map[string]any{"options": map[string]string{"operation": f.Operation}}
		if token != "" {
			act["secrets"] = map[string]string{"token": token}
		}
		in["action"] = act
	default:
		return nil, map[string]string{"preset": "choose a preset: Slack-compatible chat message or Hipcall CRM"}
	}
	return in, nil
}

// actInput names the form's input that shows the API's complaint about
// field, or "" when none does.
func actInput(field string) string {
	switch {
	case field == "name":
		return "act-name"
	case field == "url":
		return "act-url"
	case field == "preset" || field == "action.preset":
		return "act-preset"
	case field == "action.secrets" || strings.HasPrefix(field, "action.secrets."):
		return "act-token"
	case field == "action.options" || strings.HasPrefix(field, "action.options."):
		return "act-operation"
	}
	return ""
}

// actFieldErrors places the API's complaints under the form's inputs (the
// keys are the form's own, act-…, so the webhook form on the same page
// shows none of them); one no input shows goes into the summary.
func actFieldErrors(err error) (string, map[string]string) {
	var aerr *apiError
	if !errors.As(err, &aerr) {
		return err.Error(), nil
	}
	fields := map[string]string{}
	var other []string
	for _, f := range aerr.Errors {
		in := actInput(f.Field)
		if in == "" {
			other = append(other, f.Field+": "+f.Detail)
			continue
		}
		if prev, ok := fields[in]; ok {
			fields[in] = prev + "; " + f.Detail
		} else {
			fields[in] = f.Detail
		}
	}
	msg := aerr.Detail
	if msg == "" {
		msg = aerr.Title
	}
	if len(fields) > 0 {
		msg = "Please fix the fields marked below."
	}
	if len(other) > 0 {
		sort.Strings(other)
		msg = strings.TrimSuffix(msg, ".") + ": " + strings.Join(other, "; ")
	}
	return msg, fields
}

func (s *Server) channelCreateAction(w http.ResponseWriter, r *http.Request, sess *session) {
	t := tenantOf(r, sess)
	form, token := actFormFrom(r)
	refused := func(err error) {
		msg, fields := actFieldErrors(err)
		d := newChanList()
		d.Action = form
		s.renderChannels(w, r, sess, errStatus(err), d, msg, fields)
	}
	in, bad := form.body(token)
	if len(bad) > 0 {
		refused(chanLocalErrors(bad))
		return
	}
	var c herald.Channel
	if err := s.call(r, sess, http.MethodPost, tenantAPI(t)+"/channels", in, &c); err != nil {
		if !formProblem(err) {
			s.fail(w, r, sess, err)
			return
		}
		refused(err)
		return
	}
	done(w, r, chanPage(t)+"/"+url.PathEscape(c.ID), "Action channel created.")
}
