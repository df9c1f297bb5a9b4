package action

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/heraldhq/herald"
)

// env is what an expression sees of one event.
type env struct {
	vars map[string]any
}

// The compile-time environments: the same names with values of the same
// types, so expr checks calls and reports unknown names when saved.
var (
	compileEnv        = envVars("", "", "", time.Time{}, map[string]any{})
	compileEnvSecrets = withSecretsVars(compileEnv, map[string]any{})
)

func newEnv(e *herald.Event) (*env, error) {
	var data any = map[string]any{}
	if len(e.Data) > 0 {
		if err := json.Unmarshal(e.Data, &data); err != nil {
			return nil, fmt.Errorf("event data is not JSON: %w", err)
		}
	}
	return &env{vars: envVars(e.ID, e.Type, e.Source, e.OccurredAt, data)}, nil
}

func envVars(id, typ, source string, occurred time.Time, data any) map[string]any {
	obj, _ := data.(map[string]any)
	return map[string]any{
		"id":          id,
		"type":        typ,
		"source":      source,
		"occurred_at": occurred.UTC().Format(time.RFC3339Nano),
		"data":        data,
		"summary":     func() string { return Summary(typ, obj) },
		"customer":    func() map[string]any { return Customer(obj).Map() },
		"coalesce":    coalesce,
		"money":       money,
		"urlencode":   url.QueryEscape,
	}
}

// withSecrets adds secrets.<name>, for the URL and headers only.
func (e *env) withSecrets(secrets map[string]string) map[string]any {
	s := make(map[string]any, len(secrets))
	for k, v := range secrets {
		s[k] = v
	}
	return withSecretsVars(e.vars, s)
}

func withSecretsVars(vars map[string]any, secrets map[string]any) map[string]any {
	out := make(map[string]any, len(vars)+1)
	for k, v := range vars {
		out[k] = v
	}
	out["secrets"] = secrets
	return out
}

// coalesce returns its first argument that is neither nil nor "", or nil:
// coalesce(customer().first_name, "Customer").
func coalesce(vals ...any) any {
	for _, v := range vals {
		if s, ok := v.(string); ok && s == "" {
			continue
		}
		if v != nil {
			return v
		}
	}
	return nil
}

// money formats an amount in minor units (cents) of currency: money(4900,
// "USD") is "49.00 USD". A decimal string is taken as major units.
func money(amount any, currency string) string {
	m, ok := amountOf(amount, true)
	if !ok {
		return ""
	}
	return m.format(currency)
}
