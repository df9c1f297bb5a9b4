// Package schema checks event data against JSON Schema (draft 2020-12 unless
// a schema names another draft in "$schema") and reports each problem as a
// herald.FieldError a publisher can act on.
//
// Schemas are self-contained: a "$ref" may point inside the schema itself
// (for example "#/$defs/customer") but never to a file or a URL, so compiling
// a schema never touches the network or the disk. "format" is an annotation
// only, as draft 2020-12 specifies by default; it is not enforced.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/heraldhq/herald"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// schemaURL is the made-up location a compiled schema lives at. Relative
// references resolve against it and are then refused by noLoader.
const schemaURL = "herald:///data.schema.json"

// MaxFieldErrors bounds the problems Validate reports for one document; the
// last entry then says how many more were found.
const MaxFieldErrors = 50

// Bounds on a schema document: JSON nesting depth and the number of JSON
// values in it. The built-in catalog's schemas are far below both.
const (
	MaxDepth = 64
	MaxNodes = 5000
)

// measure counts the JSON values in v and how deeply they nest; it stops
// counting once past the bounds.
func measure(v any, depth int) (nodes, deepest int) {
	nodes, deepest = 1, depth
	if depth > MaxDepth {
		return nodes, deepest
	}
	var children []any
	switch x := v.(type) {
	case map[string]any:
		for _, c := range x {
			children = append(children, c)
		}
	case []any:
		children = x
	}
	for _, c := range children {
		n, d := measure(c, depth+1)
		nodes += n
		deepest = max(deepest, d)
		if nodes > MaxNodes || deepest > MaxDepth {
			break
		}
	}
	return nodes, deepest
}

// Validator checks event data against one compiled JSON Schema. It is
// immutable and safe for concurrent use.
type Validator struct {
	schema *jsonschema.Schema
	cost   *costNode
	quick  *quickNode // nil: the schema uses keywords the quick check does not read
}

// noLoader refuses every external resource, so a schema cannot make the
// server read files or fetch URLs.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external references are not allowed (%s); put the definition under \"$defs\" and refer to it as \"#/$defs/…\"", url)
}

// Compile parses and compiles raw as a JSON Schema. The error says what is
// wrong with the schema.
func Compile(raw json.RawMessage) (*Validator, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("schema is empty: send a JSON Schema object, e.g. {\"type\":\"object\"}")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %v", err)
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, errors.New("schema must be a JSON object (or true/false)")
	}
	// Compiling takes time that grows faster than the schema, so a schema
	// sent by a tenant is bounded before the library sees it.
	if nodes, depth := measure(doc, 1); depth > MaxDepth {
		return nil, fmt.Errorf("schema is nested %d levels deep; at most %d are allowed: move repeated parts under \"$defs\"", depth, MaxDepth)
	} else if nodes > MaxNodes {
		return nil, fmt.Errorf("schema has %d JSON values; at most %d are allowed: describe only the fields receivers rely on", nodes, MaxNodes)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("schema: %v", err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, compileError(err, doc)
	}
	cost, err := buildCost(doc)
	if err != nil {
		return nil, err
	}
	return &Validator{schema: sch, cost: cost, quick: buildQuick(doc)}, nil
}

// compileError rewrites the library's error so it names no internal URL.
func compileError(err error, doc any) error {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		if ve, ok := sve.Err.(*jsonschema.ValidationError); ok {
			var msgs []string
			for _, fe := range collect(ve, doc) {
				msgs = append(msgs, strings.Replace(fe.Field, "data", "schema", 1)+": "+fe.Detail)
			}
			if len(msgs) > 0 {
				return fmt.Errorf("schema is not a valid JSON Schema: %s", strings.Join(msgs, "; "))
			}
		}
		return fmt.Errorf("schema is not a valid JSON Schema: %v", sve.Err)
	}
	msg := strings.ReplaceAll(err.Error(), schemaURL, "schema")
	msg = strings.ReplaceAll(msg, `"schema#`, `"#`)
	return fmt.Errorf("schema does not compile: %s", msg)
}

// Validate checks data against the schema. It returns nil when data is
// valid, else one FieldError per problem, sorted by field. Fields are named
// from "data" down, e.g. "data.customer.email" or
// "data.product_cart[0].quantity". Data that is not JSON gets one error on
// "data". A nil Validator accepts any JSON.
func (v *Validator) Validate(data json.RawMessage) []herald.FieldError {
	if len(bytes.TrimSpace(data)) == 0 {
		return []herald.FieldError{{Field: "data", Detail: "is required"}}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return []herald.FieldError{{Field: "data", Detail: "must be valid JSON: " + err.Error()}}
	}
	return v.ValidateValue(doc)
}

// ValidateValue is Validate for data already decoded the way
// encoding/json decodes into an any with UseNumber.
func (v *Validator) ValidateValue(doc any) (out []herald.FieldError) {
	defer func() {
		// The library is not expected to panic; if it ever does, the
		// publisher still gets an answer instead of a crashed request.
		if r := recover(); r != nil {
			out = []herald.FieldError{{Field: "data", Detail: "could not be checked against the schema (a Herald bug; please report it)"}}
		}
	}()
	if v == nil || v.schema == nil {
		return nil
	}
	if v.cost != nil && !affordable(v.cost, doc, MaxCost) {
		return []herald.FieldError{{Field: "data", Detail: fmt.Sprintf(
			"is too costly to check against this event type's schema (over %d checks); send less data, or simplify the schema (fewer anyOf/oneOf branches, no repeated references)", MaxCost)}}
	}
	err := v.schema.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []herald.FieldError{{Field: "data", Detail: err.Error()}}
	}
	out = collect(ve, doc)
	if len(out) == 0 {
		out = []herald.FieldError{{Field: "data", Detail: "does not match the schema"}}
	}
	if len(out) > MaxFieldErrors {
		more := len(out) - (MaxFieldErrors - 1)
		out = append(out[:MaxFieldErrors-1], herald.FieldError{
			Field:  "data",
			Detail: fmt.Sprintf("has %d more problems not listed; fix the ones above first", more),
		})
	}
	return out
}

// collect flattens the error tree into field errors: leaves carry the
// problems, inner nodes (allOf, $ref, properties, …) only group them.
func collect(root *jsonschema.ValidationError, doc any) []herald.FieldError {
	var out []herald.FieldError
	seen := map[herald.FieldError]bool{}
	add := func(fe herald.FieldError) {
		if !seen[fe] {
			seen[fe] = true
			out = append(out, fe)
		}
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if fe, ok := alternativeTypes(e, doc); ok {
			add(fe)
			return
		}
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		field := fieldName(doc, e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				add(herald.FieldError{Field: field + member(m), Detail: "is required"})
			}
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				add(herald.FieldError{Field: field + member(p), Detail: "is not allowed; remove it"})
			}
		case *kind.Dependency:
			for _, m := range k.Missing {
				add(herald.FieldError{Field: field + member(m), Detail: fmt.Sprintf("is required when %q is present", k.Prop)})
			}
		case *kind.DependentRequired:
			for _, m := range k.Missing {
				add(herald.FieldError{Field: field + member(m), Detail: fmt.Sprintf("is required when %q is present", k.Prop)})
			}
		default:
			add(herald.FieldError{Field: field, Detail: detail(e.ErrorKind)})
		}
	}
	walk(root)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// alternativeTypes reports a failed anyOf/oneOf whose branches each failed
// only on "type" at the same place as one error: "must be string or
// integer, got number" instead of one error per branch.
func alternativeTypes(e *jsonschema.ValidationError, doc any) (herald.FieldError, bool) {
	switch e.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
	default:
		return herald.FieldError{}, false
	}
	if len(e.Causes) < 2 {
		return herald.FieldError{}, false
	}
	var want []string
	got := ""
	for _, c := range e.Causes {
		t, ok := c.ErrorKind.(*kind.Type)
		if !ok || len(c.Causes) > 0 || !slices.Equal(c.InstanceLocation, e.InstanceLocation) {
			return herald.FieldError{}, false
		}
		got = t.Got
		for _, w := range t.Want {
			if !slices.Contains(want, w) {
				want = append(want, w)
			}
		}
	}
	return herald.FieldError{
		Field:  fieldName(doc, e.InstanceLocation),
		Detail: fmt.Sprintf("must be %s, got %s", typeList(want), got),
	}, true
}

// typeList joins JSON type names with "or", null last ("string or null").
func typeList(types []string) string {
	list := make([]string, 0, len(types))
	null := false
	for _, t := range types {
		if t == "null" {
			null = true
			continue
		}
		list = append(list, t)
	}
	if null {
		list = append(list, "null")
	}
	return strings.Join(list, " or ")
}

// detail turns one error kind into a sentence that names the fix.
func detail(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return fmt.Sprintf("must be %s, got %s", typeList(k.Want), k.Got)
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = show(w)
		}
		if len(want) == 1 {
			return "must be " + want[0]
		}
		return "must be one of " + strings.Join(want, ", ")
	case *kind.Const:
		return "must be " + show(k.Want)
	case *kind.Format:
		return fmt.Sprintf("must be a valid %s", k.Want)
	case *kind.Pattern:
		return fmt.Sprintf("must match the pattern %s", k.Want)
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %d characters long", k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters long", k.Want)
	case *kind.MinItems:
		return fmt.Sprintf("must have at least %d items", k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d items", k.Want)
	case *kind.MinProperties:
		return fmt.Sprintf("must have at least %d properties", k.Want)
	case *kind.MaxProperties:
		return fmt.Sprintf("must have at most %d properties", k.Want)
	case *kind.UniqueItems:
		return fmt.Sprintf("must not repeat items (items %d and %d are equal)", k.Duplicates[0], k.Duplicates[1])
	case *kind.Minimum:
		return "must be at least " + ratString(k.Want)
	case *kind.Maximum:
		return "must be at most " + ratString(k.Want)
	case *kind.ExclusiveMinimum:
		return "must be greater than " + ratString(k.Want)
	case *kind.ExclusiveMaximum:
		return "must be less than " + ratString(k.Want)
	case *kind.MultipleOf:
		return "must be a multiple of " + ratString(k.Want)
	case *kind.FalseSchema:
		return "is not allowed; remove it"
	case *kind.OneOf:
		if len(k.Subschemas) == 0 {
			return "must match one of the allowed forms"
		}
		return "must match exactly one of the allowed forms, but matches several"
	case *kind.AnyOf:
		return "must match at least one of the allowed forms"
	case *kind.Not:
		return "must not match the forbidden form"
	case *kind.Contains, *kind.MinContains, *kind.MaxContains:
		return "must contain the expected items: " + localized(k)
	case *kind.PropertyNames:
		return fmt.Sprintf("has a property name that is not allowed: %q", k.Property)
	default:
		return "is invalid: " + localized(k)
	}
}

// localized renders a kind's own message, which needs a printer.
func localized(k jsonschema.ErrorKind) (s string) {
	defer func() {
		if recover() != nil {
			s = "does not match the schema"
		}
	}()
	ve := &jsonschema.ValidationError{ErrorKind: k}
	msg := ve.Error()
	if _, after, ok := strings.Cut(msg, ": "); ok {
		return after
	}
	return msg
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	return r.FloatString(6)
}

// show renders a JSON value the way a publisher would type it.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// member is the path suffix for object member name.
func member(name string) string {
	if plainName.MatchString(name) {
		return "." + name
	}
	return "[" + strconv.Quote(name) + "]"
}

// fieldName turns the instance location into "data.a.b[0].c". It walks doc
// along the path, so an array index and an object key that looks like a
// number are told apart.
func fieldName(doc any, loc []string) string {
	var b strings.Builder
	b.WriteString("data")
	cur := doc
	for _, tok := range loc {
		switch c := cur.(type) {
		case []any:
			b.WriteString("[" + tok + "]")
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(c) {
				cur = c[i]
			} else {
				cur = nil
			}
		case map[string]any:
			b.WriteString(member(tok))
			cur = c[tok]
		default:
			b.WriteString(member(tok))
			cur = nil
		}
	}
	return b.String()
}
