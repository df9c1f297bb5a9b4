package action

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/heraldhq/herald"
)

// HipcallBaseURL is Hipcall's API host, used when a hipcall action is
// created without a URL.
const HipcallBaseURL = "https://use.hipcall.com.tr"

// Hipcall operations and the API v3 path each posts to.
var hipcallPaths = map[string]string{
	"create_contact": "/api/v3/contacts",
	"create_company": "/api/v3/companies",
	"create_task":    "/api/v3/tasks",
}

// Hipcall bodies. first_name is required (at least one character) for a
// contact, so it falls back to the email's local part, then "Customer".
// Keys whose expression gives nil are left out: no empty phones or
// external_id are sent.
var hipcallBodies = map[string]string{
	"create_contact": `{
  "first_name": "{{ coalesce(customer().first_name, split(customer().email, \"@\")[0], \"Customer\") }}",
  "last_name": "{{ coalesce(customer().last_name) }}",
  "emails": "{{ customer().email != \"\" ? [customer().email] : nil }}",
  "phones": "{{ customer().phone != \"\" ? [{\"number\": customer().phone}] : nil }}",
  "external_id": "{{ coalesce(customer().id, customer().email) }}"
}`,
	"create_company": `{
  "name": "{{ coalesce(customer().name, customer().email, \"Customer\") }}",
  "external_id": "{{ coalesce(customer().id, customer().email) }}"
}`,
	"create_task": `{
  "name": "Follow up: {{ summary() }}",
  "description": "{{ type }} event {{ id }} (source {{ source }}, {{ occurred_at }}). Customer: {{ coalesce(customer().name, \"unknown\") }} {{ customer().email }} {{ customer().phone }}"
}`,
}

// Preset is what a preset expands to: the channel's URL and the action's
// request template.
type Preset struct {
	URL     string
	Method  string
	Headers map[string]string
	Body    json.RawMessage
	// Secrets the preset's headers read; the channel must supply them.
	Secrets []string
}

// ExpandPreset builds the template of preset name from url (for Hipcall
// the API's base URL; a URL already ending in an /api/v3/… path has that
// path replaced) and options. Problems name the field.
func ExpandPreset(name, url string, options map[string]string) (*Preset, error) {
	verr := &herald.ValidationError{}
	switch name {
	case herald.PresetHipcall:
		for k := range options {
			if k != "operation" {
				verr.Add("action.options."+k, "is not a hipcall option; the one option is operation")
			}
		}
		op := options["operation"]
		path, ok := hipcallPaths[op]
		if !ok {
			ops := make([]string, 0, len(hipcallPaths))
			for k := range hipcallPaths {
				ops = append(ops, k)
			}
			sort.Strings(ops)
			verr.Add("action.options.operation", "%q is not a Hipcall operation; use one of %s", op, strings.Join(ops, ", "))
		}
		if err := verr.Err(); err != nil {
			return nil, err
		}
		base := strings.TrimSpace(url)
		if base == "" {
			base = HipcallBaseURL
		}
		if i := strings.Index(base, "/api/"); i >= 0 {
			base = base[:i]
		}
		base = strings.TrimRight(base, "/")
		return &Preset{
			URL:    base + path,
			Method: "POST",
			Headers: map[string]string{
				"Authorization": "Bearer {{ secrets.token }}",
				"Accept":        "application/json",
			},
			Body:    json.RawMessage(hipcallBodies[op]),
			Secrets: []string{"token"},
		}, nil
	case herald.PresetSlack:
		for k := range options {
			verr.Add("action.options."+k, "slack takes no options; post to the incoming-webhook URL given as url")
		}
		if strings.TrimSpace(url) == "" {
			verr.Add("url", "is required: the incoming-webhook URL (Slack, Mattermost, or Discord's …/slack endpoint)")
		}
		if err := verr.Err(); err != nil {
			return nil, err
		}
		return &Preset{URL: strings.TrimSpace(url), Method: "POST", Headers: map[string]string{},
			Body: json.RawMessage(`{"text": "{{ summary() }}"}`)}, nil
	}
	return nil, herald.Invalid("action.preset", "%q is not a preset; use \"hipcall\" or \"slack\", or leave it out and write the template", name)
}
