package herald

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Action presets: a preset fills in the request template from a few
// options when the channel is saved; the template stays editable.
const (
	PresetNone    = ""
	PresetHipcall = "hipcall"
	PresetSlack   = "slack"
)

// SecretMask stands for a secret's value wherever a channel is shown. Sent
// back in a patch, it keeps the stored value, so a client can save what it
// read.
const SecretMask = "***"

// DisabledCredentials is why an action channel is disabled when its target
// refuses the credentials it sends.
const DisabledCredentials = "the target refused the credentials (%d); update the token and enable the channel"

// ErrClassTemplate marks an attempt whose action template could not be
// rendered for the event (a missing field, a wrong type): rendering again
// would fail again, so it is never retried automatically.
const ErrClassTemplate = "template"

// ActionVerdict adjusts the policy's verdict for an action channel: a 401 or
// 403 means the token is wrong or revoked, and every later request would be
// refused too, so the channel is disabled with a reason that says what to do
// instead of failing each delivery on its own.
func ActionVerdict(v Verdict, o Outcome) Verdict {
	if o.ErrorClass == ErrClassStatus && (o.StatusCode == 401 || o.StatusCode == 403) {
		reason := fmt.Sprintf(DisabledCredentials, o.StatusCode)
		return Verdict{Status: StatusFailed, DisableChannel: reason, Reason: "channel disabled: " + reason}
	}
	return v
}

// Action is the request template of an action channel: the channel's URL
// (which may hold expressions too) is requested with Method, Headers and the
// JSON Body, whose string values may hold `{{ expression }}` parts
// evaluated against each event (internal/action).
type Action struct {
	Method string `json:"method"`
	// Headers are sent with every request; values may hold expressions,
	// including secrets.<name>.
	Headers map[string]string `json:"headers"`
	// Body is a JSON document whose string values may hold expressions;
	// empty means no body.
	Body json.RawMessage `json:"body,omitempty"`
	// Secrets are values (API tokens) that headers and the URL refer to as
	// secrets.<name>. They are stored, but never shown: JSON answers carry
	// their names with SecretMask.
	Secrets map[string]string `json:"-"`
	// Preset and Options say which preset made the template, if any.
	Preset  string            `json:"preset,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// MarshalJSON shows the action with every secret's value masked.
func (a Action) MarshalJSON() ([]byte, error) {
	type plain Action
	masked := make(map[string]string, len(a.Secrets))
	for k := range a.Secrets {
		masked[k] = SecretMask
	}
	if a.Headers == nil {
		a.Headers = map[string]string{}
	}
	return json.Marshal(struct {
		plain
		Secrets map[string]string `json:"secrets"`
	}{plain(a), masked})
}

// SecretNames returns the names of the action's secrets, sorted.
func (a *Action) SecretNames() []string {
	return slices.Sorted(maps.Keys(a.Secrets))
}

// storedAction is how stores keep an action: with the secrets' values.
type storedAction struct {
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
	Secrets map[string]string `json:"secrets,omitempty"`
	Preset  string            `json:"preset,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// EncodeAction is what stores write for a channel's action: "" for none.
func EncodeAction(a *Action) (string, error) {
	if a == nil {
		return "", nil
	}
	b, err := json.Marshal(storedAction(*a))
	return string(b), err
}

// DecodeAction reads what EncodeAction wrote.
func DecodeAction(s string) (*Action, error) {
	if s == "" {
		return nil, nil
	}
	var st storedAction
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return nil, err
	}
	a := Action(st)
	if a.Headers == nil {
		a.Headers = map[string]string{}
	}
	return &a, nil
}
