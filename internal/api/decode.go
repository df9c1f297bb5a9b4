package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/publish"
)

// shapeError says a body (or a batch item) is well-formed JSON but not an
// object.
type shapeError struct{ got string }

func (e *shapeError) Error() string { return "must be a JSON object, not " + e.got }

// typeError turns a decoder type error into a field error that names the
// exact field, prefixed with prefix: "event_types[1]" rather than
// "event_types" when one item of the array has the wrong type.
func typeError(body []byte, prefix string, typ *json.UnmarshalTypeError) error {
	return herald.Invalid(prefix+exactField(body, typ.Field, typ.Type), "must be %s, not %s", jsonKind(typ.Type), typ.Value)
}

// exactField follows a type error's dotted field path into body. When the
// field holds an array or object while the failing Go type is not one, the
// failure was in one of its items; it names the first item of the wrong
// type.
func exactField(body []byte, field string, want reflect.Type) string {
	if want == nil || field == "" {
		return field
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var cur any
	if dec.Decode(&cur) != nil {
		return field
	}
	for _, seg := range strings.Split(field, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return field
		}
		cur = memberFold(m, seg)
	}
	for want.Kind() == reflect.Pointer {
		want = want.Elem()
	}
	switch want.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct, reflect.Interface:
		return field
	}
	switch c := cur.(type) {
	case []any:
		for i, x := range c {
			if !fits(x, want) {
				return fmt.Sprintf("%s[%d]", field, i)
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(c)) {
			if !fits(c[k], want) {
				return field + "." + k
			}
		}
	}
	return field
}

// memberFold finds key in m the way encoding/json matches field names:
// exactly, else case-insensitively.
func memberFold(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// fits reports whether JSON value x decodes into a scalar Go type t.
func fits(x any, t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		_, ok := x.(string)
		return ok
	case reflect.Bool:
		_, ok := x.(bool)
		return ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := x.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseInt(string(n), 10, t.Bits())
		return err == nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := x.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseUint(string(n), 10, t.Bits())
		return err == nil
	case reflect.Float32, reflect.Float64:
		n, ok := x.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseFloat(string(n), t.Bits())
		return err == nil
	}
	return true
}

// jsonKind names the JSON a Go type reads, for "must be …".
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another JSON type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number within range"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more, within range"
	case reflect.Float32, reflect.Float64:
		return "a number within range"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another JSON type"
}

var timeType = reflect.TypeFor[time.Time]()

// timeFieldError finds the time field of struct v that body holds in a form
// time.Time cannot read (the decoder's own error does not name it), and
// returns a field error about it; nil if there is none.
func timeFieldError(body []byte, v any) error {
	rt := reflect.TypeOf(v)
	for rt != nil && rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if rt == nil || rt.Kind() != reflect.Struct {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return nil
	}
	for i := range rt.NumField() {
		f := rt.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft != timeType {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		for k, raw := range obj {
			if !strings.EqualFold(k, name) || isNull(raw) {
				continue
			}
			var t time.Time
			if json.Unmarshal(raw, &t) != nil {
				return herald.Invalid(name, "must be an RFC 3339 time in quotes, such as \"2026-11-24T10:00:00Z\"")
			}
		}
	}
	return nil
}

// policyError turns a channel policy that does not decode into a field
// error naming the exact field.
func policyError(raw json.RawMessage, err error) herald.FieldError {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ) && typ.Field == "":
		return herald.FieldError{Field: "policy", Detail: `must be "standard", "postback" or an object {"delays_s": [...], "timeout_s": N, "retry_on_timeout": bool, "retry_statuses": [...]}`}
	case errors.As(err, &typ):
		return herald.FieldError{Field: "policy." + exactField(raw, typ.Field, typ.Type),
			Detail: fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type), typ.Value)}
	}
	if _, after, ok := strings.Cut(err.Error(), `json: unknown field "`); ok {
		name, _, _ := strings.Cut(after, `"`)
		return herald.FieldError{Field: "policy." + name, Detail: "is not a policy field; use delays_s, timeout_s, retry_on_timeout and retry_statuses"}
	}
	return herald.FieldError{Field: "policy", Detail: err.Error()}
}

// timeRangeDetail says which times Herald accepts (it stores them as Unix
// nanoseconds, so far dates cannot be kept exactly).
var timeRangeDetail = fmt.Sprintf("must be between %s and %s", publish.MinTime.Format(time.RFC3339), publish.MaxTime.Format(time.RFC3339))

// timeInRange reports whether t can be stored and compared exactly.
func timeInRange(t time.Time) bool {
	return !t.Before(publish.MinTime) && t.Before(publish.MaxTime)
}
