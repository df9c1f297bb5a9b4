package schema

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

// The library is general, and so costs several microseconds for a small
// object: a third of a publish's CPU in a burst. Most schemas, the whole
// built-in catalog among them, use a handful of keywords, and most data
// is valid. For those, a quick check runs first. It only ever answers
// "valid" or "not sure": not sure sends the data through the cost bound
// and the library, which also write every error message. So the quick
// check can never refuse what the library accepts, and it may accept only
// what the library accepts: a schema with any keyword it does not know
// gets no quick check at all, and wherever its reading of a keyword could
// differ from the library's (a number written 1.0 checked against
// "integer", say), it is not sure.
//
// It reads data as JSON text, so that a publish need not decode it into
// maps and strings at all: that decoding cost more than the check. It
// reads each value once per subschema applied to it, and skips members no
// subschema applies to. What it reads is valid JSON already; anything it
// does not expect makes it not sure.

// quickDialect is the only "$schema" the quick check reads; other drafts
// give some keywords other meanings.
const quickDialect = "https://json-schema.org/draft/2020-12/schema"

// quickDepth bounds the nesting the quick check follows, counting
// references; deeper data goes to the library.
const quickDepth = 128

// Type bits of quickNode.types.
const (
	tNull = 1 << iota
	tBoolean
	tObject
	tArray
	tNumber
	tString
	tInteger
)

var typeBits = map[string]uint8{
	"null": tNull, "boolean": tBoolean, "object": tObject, "array": tArray,
	"number": tNumber, "string": tString, "integer": tInteger,
}

// annotations are keywords that never make data invalid ("format" is not
// enforced: see the package comment).
var annotations = map[string]bool{
	"title": true, "description": true, "format": true, "examples": true,
	"default": true, "$comment": true, "deprecated": true, "readOnly": true,
	"writeOnly": true, "$defs": true,
}

// quickNode is one subschema as the quick check reads it.
type quickNode struct {
	never      bool  // the schema false
	types      uint8 // allowed types; 0 allows all
	required   []string
	props      map[string]*quickNode
	additional *quickNode // applied to members props does not name; nil: none
	items      *quickNode
	ref        *quickNode
	allOf      []*quickNode
	anyOf      []*quickNode
	enum       []any
	hasEnum    bool
	konst      any
	hasConst   bool
	minLen     int // -1: none
	maxLen     int
	minItems   int
	maxItems   int
	pattern    *regexp.Regexp
	min, max   *big.Rat
	exclMin    *big.Rat
	exclMax    *big.Rat
}

// quickBuilder builds quickNodes for one schema document.
type quickBuilder struct {
	root  map[string]any
	nodes map[uintptr]*quickNode
	ok    bool
}

// buildQuick returns the quick check of doc, or nil when doc uses anything
// the quick check does not read. doc has compiled.
func buildQuick(doc any) *quickNode {
	root, ok := doc.(map[string]any)
	if !ok {
		return nil // true or false: the library's answer is immediate anyway
	}
	if d, ok := root["$schema"]; ok && d != quickDialect && d != quickDialect+"#" {
		return nil
	}
	b := &quickBuilder{root: root, nodes: map[uintptr]*quickNode{}, ok: true}
	n := b.node(doc, true)
	if !b.ok {
		return nil
	}
	return n
}

// node builds the quickNode of schema v; top says v is the document root,
// the only place "$schema" may be.
func (b *quickBuilder) node(v any, top bool) *quickNode {
	if !b.ok {
		return nil
	}
	switch s := v.(type) {
	case bool:
		return &quickNode{never: !s, minLen: -1, maxLen: -1, minItems: -1, maxItems: -1}
	case map[string]any:
		key := reflect.ValueOf(s).Pointer()
		if n := b.nodes[key]; n != nil {
			return n
		}
		n := &quickNode{minLen: -1, maxLen: -1, minItems: -1, maxItems: -1}
		b.nodes[key] = n // before the children: references may cycle back
		for k, kv := range s {
			if !b.keyword(n, k, kv, top) {
				b.ok = false
				return nil
			}
		}
		return n
	default:
		b.ok = false
		return nil
	}
}

// keyword reads one keyword of a subschema into n; false means the quick
// check does not read it.
func (b *quickBuilder) keyword(n *quickNode, k string, v any, top bool) bool {
	switch k {
	case "$schema":
		return top
	case "type":
		switch t := v.(type) {
		case string:
			n.types = typeBits[t]
			return n.types != 0
		case []any:
			for _, x := range t {
				s, _ := x.(string)
				if typeBits[s] == 0 {
					return false
				}
				n.types |= typeBits[s]
			}
			return n.types != 0
		}
		return false
	case "required":
		list, ok := v.([]any)
		for _, x := range list {
			s, isString := x.(string)
			if !isString {
				return false
			}
			n.required = append(n.required, s)
		}
		return ok
	case "properties":
		m, ok := v.(map[string]any)
		n.props = make(map[string]*quickNode, len(m))
		for name, s := range m {
			n.props[name] = b.node(s, false)
		}
		return ok && b.ok
	case "additionalProperties":
		n.additional = b.node(v, false)
		return b.ok
	case "items":
		n.items = b.node(v, false)
		return b.ok
	case "allOf", "anyOf":
		list, ok := v.([]any)
		var subs []*quickNode
		for _, s := range list {
			subs = append(subs, b.node(s, false))
		}
		if k == "allOf" {
			n.allOf = subs
		} else {
			n.anyOf = subs
		}
		return ok && len(subs) > 0 && b.ok
	case "$ref":
		ref, _ := v.(string)
		target, ok := b.resolve(ref)
		if !ok {
			return false
		}
		n.ref = b.node(target, false)
		return b.ok
	case "const":
		n.konst, n.hasConst = v, true
		return true
	case "enum":
		list, ok := v.([]any)
		n.enum, n.hasEnum = list, true
		return ok
	case "minLength", "maxLength", "minItems", "maxItems":
		num, _ := v.(json.Number)
		i, err := strconv.Atoi(string(num))
		if err != nil || i < 0 {
			return false
		}
		switch k {
		case "minLength":
			n.minLen = i
		case "maxLength":
			n.maxLen = i
		case "minItems":
			n.minItems = i
		default:
			n.maxItems = i
		}
		return true
	case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
		num, _ := v.(json.Number)
		r, ok := new(big.Rat).SetString(string(num))
		if !ok {
			return false
		}
		switch k {
		case "minimum":
			n.min = r
		case "maximum":
			n.max = r
		case "exclusiveMinimum":
			n.exclMin = r
		default:
			n.exclMax = r
		}
		return true
	case "pattern":
		p, _ := v.(string)
		re, err := regexp.Compile(p) // the library's default engine
		n.pattern = re
		return err == nil
	}
	return annotations[k]
}

// resolve finds what "$ref" names: the root, or an entry of the root's
// "$defs" with a plain name. Anything else is for the library.
func (b *quickBuilder) resolve(ref string) (any, bool) {
	if ref == "#" {
		return b.root, true
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok || name == "" || strings.ContainsAny(name, "/~%") {
		return nil, false
	}
	defs, _ := b.root["$defs"].(map[string]any)
	s, ok := defs[name]
	return s, ok
}

// ValidateJSON is Validate for data known to be valid JSON, as the
// publisher's decoding leaves it. Data the quick check finds valid in its
// text is never decoded.
func (v *Validator) ValidateJSON(data []byte) []herald.FieldError {
	if v != nil && v.quick != nil {
		c := quickCheck{budget: MaxCost}
		if c.valid(v.quick, data) {
			return nil
		}
	}
	return v.Validate(data)
}

// quickCheck walks data and schema together, within a budget of subschema
// applications.
type quickCheck struct{ budget int }

// bytesPerApplication is how many bytes of text the budget counts as one
// subschema application: a value is read again for every subschema
// applied to it, and a long one read many times must not go unbounded.
const bytesPerApplication = 64

// skip moves t past a value no subschema applies to, counting its bytes.
func (c *quickCheck) skip(t *text) bool {
	start := t.i
	ok := t.skip()
	c.budget -= (t.i - start) / bytesPerApplication
	return ok
}

// valid reports whether b, the text of one JSON value, is certainly valid
// against n.
func (c *quickCheck) valid(n *quickNode, b []byte) bool {
	t := text{b: b}
	if !c.walk(n, &t, 0) {
		return false
	}
	t.ws()
	return t.i == len(b)
}

// walk reports whether the value at t is certainly valid against n, and
// moves t past it.
func (c *quickCheck) walk(n *quickNode, t *text, depth int) bool {
	c.budget--
	t.ws()
	if c.budget < 0 || depth > quickDepth || n.never || t.i >= len(t.b) {
		return false
	}
	start, first := t.i, t.b[t.i]
	if n.types != 0 && n.types&textType(t.b[t.i:]) == 0 {
		return false
	}
	// Subschemas applied in place read the value again from its start.
	if n.ref != nil || len(n.allOf) > 0 || len(n.anyOf) > 0 {
		if n.ref != nil && !c.again(n.ref, t, start, depth) {
			return false
		}
		for _, s := range n.allOf {
			if !c.again(s, t, start, depth) {
				return false
			}
		}
		if len(n.anyOf) > 0 && !c.anyAgain(n.anyOf, t, start, depth) {
			return false
		}
		t.i = start
	}
	switch {
	case first == '{':
		return !n.hasConst && !n.hasEnum && c.object(n, t, depth)
	case first == '[':
		return !n.hasConst && !n.hasEnum && c.array(n, t, depth)
	}
	v, ok := t.scalar()
	c.budget -= len(v) / bytesPerApplication
	if !ok || n.hasConst && !sameText(n.konst, v) || n.hasEnum && !c.inEnum(n.enum, v) {
		return false
	}
	switch first {
	case '"':
		if n.minLen < 0 && n.maxLen < 0 && n.pattern == nil {
			return true
		}
		s, ok := plainString(v)
		if !ok {
			return false
		}
		if n.minLen >= 0 || n.maxLen >= 0 {
			l := utf8.RuneCount(s)
			if n.minLen >= 0 && l < n.minLen || n.maxLen >= 0 && l > n.maxLen {
				return false
			}
		}
		return n.pattern == nil || n.pattern.Match(s)
	case 't', 'f', 'n':
		return true
	}
	return n.inBounds(v)
}

// again walks the value at start against s.
func (c *quickCheck) again(s *quickNode, t *text, start, depth int) bool {
	t.i = start
	return c.walk(s, t, depth+1)
}

func (c *quickCheck) anyAgain(subs []*quickNode, t *text, start, depth int) bool {
	for _, s := range subs {
		if c.again(s, t, start, depth) {
			return true
		}
	}
	return false
}

// inBounds reports whether the number written num is within n's numeric
// bounds.
func (n *quickNode) inBounds(num []byte) bool {
	if n.min == nil && n.max == nil && n.exclMin == nil && n.exclMax == nil {
		return true
	}
	r, ok := new(big.Rat).SetString(string(num))
	if !ok {
		return false
	}
	return (n.min == nil || r.Cmp(n.min) >= 0) &&
		(n.max == nil || r.Cmp(n.max) <= 0) &&
		(n.exclMin == nil || r.Cmp(n.exclMin) > 0) &&
		(n.exclMax == nil || r.Cmp(n.exclMax) < 0)
}

func (c *quickCheck) object(n *quickNode, t *text, depth int) bool {
	if len(n.required) > 64 {
		return false
	}
	var seen uint64
	t.i++ // {
	if !t.next('}') {
		for {
			t.ws()
			v, ok := t.scalar()
			name, plain := plainString(v)
			if !ok || !plain || !t.next(':') {
				return false
			}
			for i, r := range n.required {
				if string(name) == r {
					seen |= 1 << i
				}
			}
			s, ok := n.props[string(name)]
			if !ok {
				s = n.additional
			}
			if s != nil && !c.walk(s, t, depth+1) || s == nil && !c.skip(t) {
				return false
			}
			if t.next('}') {
				break
			}
			if !t.next(',') {
				return false
			}
		}
	}
	return seen == 1<<len(n.required)-1
}

func (c *quickCheck) array(n *quickNode, t *text, depth int) bool {
	count := 0
	t.i++ // [
	if !t.next(']') {
		for {
			count++
			if n.items != nil && !c.walk(n.items, t, depth+1) || n.items == nil && !c.skip(t) {
				return false
			}
			if t.next(']') {
				break
			}
			if !t.next(',') {
				return false
			}
		}
	}
	return (n.minItems < 0 || count >= n.minItems) && (n.maxItems < 0 || count <= n.maxItems)
}

func (c *quickCheck) inEnum(values []any, v []byte) bool {
	for _, e := range values {
		c.budget--
		if sameText(e, v) {
			return true
		}
	}
	return false
}

// textType is the type of the value b starts with as a bit, with tInteger
// added for a number written as an integer. A number with a fraction or
// exponent (1.0, 1e2) gets no tInteger, though it may be an integer: the
// library then decides.
func textType(b []byte) uint8 {
	switch b[0] {
	case '{':
		return tObject
	case '[':
		return tArray
	case '"':
		return tString
	case 't', 'f':
		return tBoolean
	case 'n':
		return tNull
	}
	for _, c := range b {
		switch c {
		case '.', 'e', 'E':
			return tNumber
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return tNumber | tInteger
		}
	}
	return tNumber | tInteger
}

// sameText reports whether a scalar's text is certainly the JSON value e:
// a string, number or literal written as e is. Numbers are equal only as
// written alike (1 and 1.0 are left to the library), and so is a string
// with escapes.
func sameText(e any, v []byte) bool {
	switch x := e.(type) {
	case nil:
		return string(v) == "null"
	case bool:
		return string(v) == strconv.FormatBool(x)
	case json.Number:
		return string(v) == string(x)
	case string:
		s, ok := plainString(v)
		return ok && string(s) == x
	}
	return false
}

// plainString returns the text of a string without escapes.
func plainString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// text is a reader of valid JSON.
type text struct {
	b []byte
	i int
}

func (t *text) ws() {
	for t.i < len(t.b) && (t.b[t.i] == ' ' || t.b[t.i] == '\t' || t.b[t.i] == '\n' || t.b[t.i] == '\r') {
		t.i++
	}
}

// next consumes c, after whitespace, if it comes next.
func (t *text) next(c byte) bool {
	t.ws()
	if t.i < len(t.b) && t.b[t.i] == c {
		t.i++
		return true
	}
	return false
}

// scalar reads the string, number or literal at t.i and returns its text.
func (t *text) scalar() ([]byte, bool) {
	start := t.i
	if t.i >= len(t.b) {
		return nil, false
	}
	if t.b[t.i] == '"' {
		// A quote ends the string unless an odd number of backslashes
		// escape it.
		for t.i++; ; t.i++ {
			q := bytes.IndexByte(t.b[t.i:], '"')
			if q < 0 {
				return nil, false
			}
			t.i += q
			k := t.i
			for k > start && t.b[k-1] == '\\' {
				k--
			}
			if (t.i-k)%2 == 0 {
				t.i++
				return t.b[start:t.i], true
			}
		}
	}
	for t.i < len(t.b) {
		switch t.b[t.i] {
		case ',', '}', ']', ':', ' ', '\t', '\n', '\r', '{', '[', '"':
			return t.b[start:t.i], t.i > start
		}
		t.i++
	}
	return t.b[start:t.i], t.i > start
}

// skip moves past the value at t.i.
func (t *text) skip() bool {
	t.ws()
	if t.i >= len(t.b) {
		return false
	}
	if c := t.b[t.i]; c != '{' && c != '[' {
		_, ok := t.scalar()
		return ok
	}
	for depth := 0; t.i < len(t.b); {
		switch t.b[t.i] {
		case '"':
			if _, ok := t.scalar(); !ok {
				return false
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				t.i++
				return true
			}
		}
		t.i++
	}
	return false
}
