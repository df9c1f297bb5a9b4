package publish

import (
	"bytes"
	"encoding/binary"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeInput reads a publish request's body in one pass: it checks the
// JSON and fills the Input, keeping data as its bytes, which the schema's
// quick check reads without decoding them. The general path
// (encoding/json into Input, then the schema validator's own decoding of
// the data) reads every byte four times and was a tenth of a publish's
// CPU; decoding data into maps and strings for the schema was most of
// what was left.
//
// It takes only the plain form: one object of Input's own field names,
// each at most once, spelled exactly, in valid UTF-8. For anything else —
// and for every error — it reports false and leaves the body to the general
// path, which accepts what encoding/json accepts and words the errors, so
// what Herald accepts and answers does not depend on which path ran.
func DecodeInput(body []byte) (Input, bool) {
	var in Input
	if !utf8.Valid(body) {
		return in, false
	}
	d := decoder{b: body}
	d.ws()
	if !d.byte('{') {
		return in, false
	}
	seen := 0
	d.ws()
	if !d.byte('}') {
		for {
			d.ws()
			name, ok := d.name()
			if !ok {
				return in, false
			}
			d.ws()
			if !d.byte(':') {
				return in, false
			}
			d.ws()
			bit := 0
			switch name {
			case "type":
				bit, ok = 1, d.text(&in.Type)
			case "source":
				bit, ok = 2, d.text(&in.Source)
			case "idempotency_key":
				bit, ok = 4, d.text(&in.IdempotencyKey)
			case "occurred_at":
				bit, ok = 8, d.time(&in.OccurredAt)
			case "data":
				start := d.i
				d.spaced = false
				ok = d.skip()
				in.Data = bytes.Clone(body[start:d.i])
				in.compact = !d.spaced
				bit = 16
			}
			if !ok || bit == 0 || seen&bit != 0 {
				return Input{}, false
			}
			seen |= bit
			d.ws()
			if d.byte('}') {
				break
			}
			if !d.byte(',') {
				return Input{}, false
			}
		}
	}
	d.ws()
	if d.i != len(d.b) {
		return Input{}, false
	}
	return in, true
}

// maxDepth bounds nesting; deeper data takes the general path.
const maxDepth = 1000

// decoder reads JSON (RFC 8259) from b: the envelope's strings as
// encoding/json decodes them, and anything else checked and skipped.
type decoder struct {
	b      []byte
	i      int
	depth  int
	spaced bool // ws skipped whitespace
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
			d.spaced = true
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (d *decoder) byte(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// name reads a member name without escapes, the only kind the plain form
// has (encoding/json also matches escaped and differently cased names).
func (d *decoder) name() (string, bool) {
	start := d.i
	if start >= len(d.b) || d.b[start] != '"' {
		return "", false
	}
	s, ok := d.str()
	// An escape always spells its character in more bytes than it takes,
	// so a name as long as its text (less the quotes) has none.
	return s, ok && len(s) == d.i-start-2
}

// text reads a string or null (which leaves *dst as it is, as
// encoding/json does).
func (d *decoder) text(dst *string) bool {
	v, ok := d.value()
	switch s := v.(type) {
	case string:
		*dst = s
	case nil:
	default:
		return false
	}
	return ok
}

// time reads an RFC 3339 time or null, exactly as time.Time decodes.
func (d *decoder) time(dst **time.Time) bool {
	start := d.i
	v, ok := d.value()
	switch v.(type) {
	case string:
		var t time.Time
		if t.UnmarshalJSON(d.b[start:d.i]) != nil {
			return false
		}
		*dst = &t
	case nil:
		*dst = nil
	default:
		return false
	}
	return ok
}

// other stands for a field's value that is neither a string nor null.
type other struct{}

// value reads a field's value: a string, nil for null, or other{} for any
// other JSON value, which the caller refuses.
func (d *decoder) value() (any, bool) {
	if d.i < len(d.b) && d.b[d.i] == '"' {
		return d.str()
	}
	if d.literal("null") {
		return nil, true
	}
	return other{}, d.skip()
}

func (d *decoder) literal(word string) bool {
	if bytes.HasPrefix(d.b[d.i:], []byte(word)) {
		d.i += len(word)
		return true
	}
	return false
}

// skip reads one JSON value without building it: data is kept as its
// bytes, and the schema's quick check reads those.
func (d *decoder) skip() bool {
	if d.i >= len(d.b) {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.items('}', func() bool {
			if d.i >= len(d.b) || d.b[d.i] != '"' {
				return false
			}
			if _, _, ok := d.scan(); !ok {
				return false
			}
			d.ws()
			if !d.byte(':') {
				return false
			}
			d.ws()
			return d.skip()
		})
	case c == '[':
		return d.items(']', d.skip)
	case c == '"':
		_, _, ok := d.scan()
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return d.literal("true") || d.literal("false") || d.literal("null")
}

// items reads the comma-separated items of the object or array opening
// at d.i up to its closing byte, each with item.
func (d *decoder) items(closing byte, item func() bool) bool {
	if d.depth++; d.depth > maxDepth {
		return false
	}
	defer func() { d.depth-- }()
	d.i++ // the opening bracket
	d.ws()
	if d.byte(closing) {
		return true
	}
	for {
		d.ws()
		if !item() {
			return false
		}
		d.ws()
		if d.byte(closing) {
			return true
		}
		if !d.byte(',') {
			return false
		}
	}
}

// str reads a string; the body is valid UTF-8 already.
func (d *decoder) str() (string, bool) {
	start := d.i + 1
	text, escaped, ok := d.scan()
	switch {
	case !ok:
		return "", false
	case escaped:
		return string(text), true
	}
	return string(d.b[start : d.i-1]), true
}

// scan reads a string up to its closing quote. A string without escapes
// is the bytes between its quotes; one with escapes has its text in text.
func (d *decoder) scan() (text []byte, escaped, ok bool) {
	d.i++ // "
	start := d.i
	d.i += plain(d.b[d.i:])
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return nil, false, true
		case c == '\\':
			text, ok = d.escaped(start)
			return text, true, ok
		case c < 0x20:
			return nil, false, false
		}
		d.i++
	}
	return nil, false, false
}

// plain returns how many bytes at the start of b, in whole words of
// eight, are none of a quote, a backslash or a control character: the
// string goes on at least that far. Strings are most of an event's bytes,
// and reading them a word at a time took about 15% off decoding the
// benchmark's 1 KiB event (2.35 → 2.0 µs).
func plain(b []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		quote, backslash := w^(ones*'"'), w^(ones*'\\')
		// A word has a zero byte, or one below 0x20, exactly when the
		// high bit survives these (bytes of 0x80 and above never count).
		if (w-ones*0x20)&^w&highs|(quote-ones)&^quote&highs|(backslash-ones)&^backslash&highs != 0 {
			break
		}
	}
	return i
}

// escaped finishes a string that has escapes, from its first one on. A
// lone surrogate becomes U+FFFD, as encoding/json makes it.
func (d *decoder) escaped(start int) ([]byte, bool) {
	out := append(make([]byte, 0, d.i-start+16), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		d.i++ // the backslash
		if d.i >= len(d.b) {
			return nil, false
		}
		e := d.b[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, false
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if save := d.i; d.literal(`\u`) {
					if r2, ok = d.hex4(); !ok {
						return nil, false
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						continue
					}
					d.i = save // not a pair: the second escape stands alone
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func (d *decoder) number() bool {
	d.byte('-')
	switch {
	case d.byte('0'):
	case d.digits() == 0:
		return false
	}
	if d.byte('.') && d.digits() == 0 {
		return false
	}
	if d.byte('e') || d.byte('E') {
		if !d.byte('+') {
			d.byte('-')
		}
		if d.digits() == 0 {
			return false
		}
	}
	return true
}

func (d *decoder) digits() int {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}
