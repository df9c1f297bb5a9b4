package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/textproto"
	"regexp"
	"slices"
	"strings"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/action"
)

// actionInput is the "action" object of a channel create or patch body;
// nil means "not sent". A patch changes only what it sends.
type actionInput struct {
	Method  *string            `json:"method"`
	Headers *map[string]string `json:"headers"`
	Body    json.RawMessage    `json:"body"`
	// Secrets replaces the set of secrets: a name sent with "***" keeps its
	// stored value (what a GET shows), a name left out is removed.
	Secrets *map[string]string `json:"secrets"`
	Preset  *string            `json:"preset"`
	Options *map[string]string `json:"options"`
}

var secretName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Bounds of an action's parts.
const (
	maxActionSecrets = 16
	maxSecretLength  = 4096
)

// applyAction validates the action parts of in and writes them onto c, an
// action channel. A preset (sent as "preset" or "action.preset", with
// "action.options") is expanded into the template here, so the saved
// channel shows exactly what is sent; method, headers and body sent in the
// same request override the preset's. Every template is compiled, so an
// expression that does not compile is answered now, naming its field.
func (s *Server) applyAction(ctx context.Context, c *herald.Channel, in *channelInput, creating bool, verr *herald.ValidationError) {
	ai := in.Action
	if ai == nil {
		ai = &actionInput{}
	}
	a := &herald.Action{Method: "POST", Headers: map[string]string{}, Secrets: map[string]string{}}
	if c.Action != nil {
		cp := *c.Action
		cp.Headers = maps.Clone(cp.Headers)
		cp.Secrets = maps.Clone(cp.Secrets)
		if cp.Secrets == nil {
			cp.Secrets = map[string]string{}
		}
		a = &cp
	}

	presetSent := in.Preset != nil || ai.Preset != nil
	switch {
	case in.Preset != nil && ai.Preset != nil && *in.Preset != *ai.Preset:
		verr.Add("preset", "says %q but action.preset says %q; send one of them", *in.Preset, *ai.Preset)
		return
	case in.Preset != nil:
		a.Preset = strings.TrimSpace(*in.Preset)
	case ai.Preset != nil:
		a.Preset = strings.TrimSpace(*ai.Preset)
	}
	if ai.Options != nil {
		a.Options = *ai.Options
	}
	if ai.Secrets != nil {
		next := map[string]string{}
		if len(*ai.Secrets) > maxActionSecrets {
			verr.Add("action.secrets", "at most %d secrets are allowed", maxActionSecrets)
		}
		for k, v := range *ai.Secrets {
			switch {
			case !secretName.MatchString(k):
				verr.Add("action.secrets."+k, "is not a secret name; use a-z, 0-9 and _, starting with a letter, such as token")
			case v == herald.SecretMask:
				old, ok := a.Secrets[k]
				if !ok {
					verr.Add("action.secrets."+k, "%q keeps a stored value, but there is none; send the value", herald.SecretMask)
				}
				next[k] = old
			case v == "" || len(v) > maxSecretLength || strings.ContainsAny(v, "\r\n\x00"):
				verr.Add("action.secrets."+k, "must be one line of 1 to %d characters", maxSecretLength)
			default:
				next[k] = v
			}
		}
		a.Secrets = next
	}

	// A preset is expanded when it or its options are sent.
	if a.Preset != "" && (presetSent || ai.Options != nil) {
		url := c.URL
		if in.URL == nil && creating {
			url = ""
		}
		p, err := action.ExpandPreset(a.Preset, url, a.Options)
		if err != nil {
			addFields(verr, err)
			return
		}
		c.URL, a.Method, a.Headers, a.Body = p.URL, p.Method, p.Headers, p.Body
		for _, name := range p.Secrets {
			if a.Secrets[name] == "" {
				verr.Add("action.secrets."+name, "is required by the %s preset: the API token", a.Preset)
			}
		}
	} else if presetSent && a.Preset != "" {
		verr.Add("action.preset", "unknown preset %q", a.Preset)
	} else if ai.Options != nil && a.Preset == "" && len(a.Options) > 0 {
		verr.Add("action.options", "are the options of a preset; send action.preset too")
	}

	if ai.Method != nil {
		a.Method = strings.ToUpper(strings.TrimSpace(*ai.Method))
	}
	if ai.Headers != nil {
		a.Headers = map[string]string{}
		if len(*ai.Headers) > 32 {
			verr.Add("action.headers", "at most 32 headers are allowed")
		}
		for k, v := range *ai.Headers {
			switch {
			case !validHeaderName(k):
				verr.Add("action.headers."+k, "is not a valid header name; use letters, digits and '-', such as Authorization")
			case slices.ContainsFunc(reservedHeaders, func(r string) bool { return strings.EqualFold(r, k) }):
				verr.Add("action.headers."+k, "is set by Herald and cannot be overridden; remove it")
			case strings.ContainsAny(v, "\r\n\x00") || len(v) > 4096:
				verr.Add("action.headers."+k, "value must be one line of at most 4096 characters")
			default:
				a.Headers[textproto.CanonicalMIMEHeaderKey(k)] = v
			}
		}
	}
	if ai.Body != nil {
		if isNull(ai.Body) {
			a.Body = nil
		} else {
			a.Body = compactJSON(ai.Body)
		}
	}
	c.Action = a

	if c.URL == "" {
		verr.Add("url", "is required: the http(s) URL the action requests (for the hipcall preset, Hipcall's base URL)")
		return
	}
	if len(verr.Fields) > 0 {
		return
	}
	if _, err := action.Compile(c.URL, a); err != nil {
		addFields(verr, err)
		return
	}
	if err := s.Guard.CheckURL(ctx, action.StaticURL(c.URL)); err != nil {
		verr.Add("url", "%v", err)
	}
}

// addFields copies a validation error's fields into verr.
func addFields(verr *herald.ValidationError, err error) {
	var v *herald.ValidationError
	if errors.As(err, &v) {
		verr.Fields = append(verr.Fields, v.Fields...)
		return
	}
	verr.Add("action", "%v", err)
}

// compactJSON keeps a body template as sent, minus insignificant space; a
// body that is not JSON is kept as is for Compile to report.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}
