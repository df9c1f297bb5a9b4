package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// node is one value of a body template. Objects keep their keys in the
// order written, so the request reads like the template.
type node interface {
	// render writes the value; omit reports a value that is exactly one
	// expression evaluating to nil, which an object leaves out.
	render(b *bytes.Buffer, vars map[string]any, path string) (omit bool, err error)
}

type literal json.RawMessage // a number, true, false or null, as written

type strNode struct{ t text }

type arrNode []node

type objNode struct {
	keys []string
	vals []node
}

// compileBody parses a JSON document and compiles the expressions in its
// strings; errors name the JSON path.
func compileBody(raw []byte) (node, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	n, err := parseValue(dec, "")
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("holds more than one JSON value; use one object")
	}
	return n, nil
}

func parseValue(dec *json.Decoder, path string) (node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("is not valid JSON: %v", err)
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			o := &objNode{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("is not valid JSON: %v", err)
				}
				k := kt.(string)
				val, err := parseValue(dec, joinPath(path, k))
				if err != nil {
					return nil, err
				}
				o.keys, o.vals = append(o.keys, k), append(o.vals, val)
			}
			_, err := dec.Token()
			return o, err
		case '[':
			var a arrNode
			for i := 0; dec.More(); i++ {
				val, err := parseValue(dec, fmt.Sprintf("%s[%d]", path, i))
				if err != nil {
					return nil, err
				}
				a = append(a, val)
			}
			_, err := dec.Token()
			return a, err
		}
	case string:
		t, err := compileText(v, false, nil)
		if err != nil {
			if path == "" {
				return nil, err
			}
			return nil, fmt.Errorf("at %s: %w", path, err)
		}
		return strNode{t}, nil
	case json.Number:
		return literal(v.String()), nil
	case bool:
		return literal(strconv.FormatBool(v)), nil
	case nil:
		return literal("null"), nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (l literal) render(b *bytes.Buffer, _ map[string]any, _ string) (bool, error) {
	b.Write(l)
	return false, nil
}

func (s strNode) render(b *bytes.Buffer, vars map[string]any, path string) (bool, error) {
	if p := s.t.single(); p != nil {
		v, err := run(s.t.parts[0], vars)
		if err != nil {
			return false, at(path, err)
		}
		if v == nil {
			b.WriteString("null")
			return true, nil
		}
		enc, err := marshalValue(v)
		if err != nil {
			return false, at(path, fmt.Errorf("{{ %s }}: %w", s.t.parts[0].src, err))
		}
		b.Write(enc)
		return false, nil
	}
	str, err := s.t.render(vars)
	if err != nil {
		return false, at(path, err)
	}
	enc, _ := json.Marshal(str)
	b.Write(enc)
	return false, nil
}

func (a arrNode) render(b *bytes.Buffer, vars map[string]any, path string) (bool, error) {
	b.WriteByte('[')
	for i, n := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		if _, err := n.render(b, vars, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return false, err
		}
	}
	b.WriteByte(']')
	return false, nil
}

func (o *objNode) render(b *bytes.Buffer, vars map[string]any, path string) (bool, error) {
	b.WriteByte('{')
	first := true
	var val bytes.Buffer
	for i, k := range o.keys {
		val.Reset()
		omit, err := o.vals[i].render(&val, vars, joinPath(path, k))
		if err != nil {
			return false, err
		}
		if omit {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		enc, _ := json.Marshal(k)
		b.Write(enc)
		b.WriteByte(':')
		b.Write(val.Bytes())
	}
	b.WriteByte('}')
	return false, nil
}

func at(path string, err error) error {
	if path == "" {
		return err
	}
	return fmt.Errorf("at %s: %w", path, err)
}

// marshalValue writes an expression's value as JSON: numbers stay numbers,
// arrays and maps keep their shape, times become RFC 3339 strings.
func marshalValue(v any) ([]byte, error) {
	switch x := v.(type) {
	case time.Time:
		return json.Marshal(x.UTC().Format(time.RFC3339Nano))
	case time.Duration:
		return json.Marshal(x.String())
	case float64:
		// An integral float (JSON numbers decode as float64) is written
		// without an exponent, as the publisher wrote it.
		if x == float64(int64(x)) && x < 1e15 && x > -1e15 {
			return []byte(strconv.FormatInt(int64(x), 10)), nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("the value (%T) cannot be written as JSON", v)
	}
	return b, nil
}
