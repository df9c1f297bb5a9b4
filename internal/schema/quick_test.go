package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/catalog"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func quickValid(v *Validator, data []byte) bool {
	c := quickCheck{budget: MaxCost}
	return v.quick != nil && c.valid(v.quick, data)
}

// TestQuickCheckReadsCatalog: every built-in type's schema gets the quick
// check, and its example passes it, so publishing built-in types does not
// run the library for valid data.
func TestQuickCheckReadsCatalog(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range cat.All() {
		v, err := Compile(et.Schema)
		if err != nil {
			t.Fatalf("%s: %v", et.Name, err)
		}
		if v.quick == nil {
			t.Errorf("%s: schema gets no quick check", et.Name)
			continue
		}
		if !quickValid(v, et.Example) {
			t.Errorf("%s: example does not pass the quick check", et.Name)
		}
	}
}

// TestQuickCheckLeavesUnreadSchemas: a schema with a keyword, draft or
// reference the quick check does not read gets none, and the library
// alone decides.
func TestQuickCheckLeavesUnreadSchemas(t *testing.T) {
	for _, s := range []string{
		`{"oneOf":[{"type":"string"},{"type":"integer"}]}`,
		`{"not":{"type":"string"}}`,
		`{"properties":{"a":{"if":{"type":"string"},"then":{"minLength":2}}}}`,
		`{"patternProperties":{"^x":{"type":"string"}}}`,
		`{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}]}`,
		`{"properties":{"a":{"type":"string"}},"unevaluatedProperties":false}`,
		`{"properties":{"a":{"$ref":"#/properties/b"},"b":{"type":"string"}}}`,
		`{"$id":"herald:///other.json","type":"object"}`,
		`{"properties":{"a":{"$schema":"https://json-schema.org/draft/2020-12/schema"}}}`,
		`{"minLength":2.0}`,
		`{"uniqueItems":true}`,
		`{"x-herald":{"type":"string"}}`,
	} {
		v := mustCompile(t, s)
		if v.quick != nil {
			t.Errorf("%s: got a quick check", s)
		}
	}
	if v := mustCompile(t, `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}`); v.quick == nil {
		t.Error("the 2020-12 dialect named in $schema: no quick check")
	}
}

// TestQuickCheckUnsureCases: where the quick check's reading could differ
// from the library's, it is not sure, and Validate still gives the
// library's answer.
func TestQuickCheckUnsureCases(t *testing.T) {
	tests := []struct {
		schema, data string
		valid        bool
	}{
		{`{"type":"integer"}`, `1.0`, true},
		{`{"type":"integer"}`, `1e2`, true},
		{`{"type":"integer"}`, `1.5`, false},
		{`{"const":1}`, `1.0`, true},
		{`{"enum":[{"a":1}]}`, `{"a":1e0}`, true},
		{`{"enum":[{"a":1}]}`, `{"a":2}`, false},
		{`{"$ref":"#"}`, `{}`, false}, // a reference cycle: the library's error
		{`{"properties":{"a":{"type":"string"}}}`, `{"\u0061":1}`, false},
		{`{"required":["a"]}`, `{"\u0061":1}`, true},
		{`{"const":"é"}`, `"\u00e9"`, true},
		{`{"maxLength":1}`, `"\u00e9"`, true},
		{`{"pattern":"^a$"}`, `"\u0061"`, true},
		{`{"items":{"type":"integer"},"maxItems":2}`, `[1, 2.0]`, true},
		{`{"properties":{"a":{"$ref":"#"}}}`, strings.Repeat(`{"a":`, quickDepth+5) + "1" + strings.Repeat(`}`, quickDepth+5), true},
	}
	for _, tt := range tests {
		v := mustCompile(t, tt.schema)
		doc := decode(t, tt.data)
		if quickValid(v, []byte(tt.data)) && !tt.valid {
			t.Errorf("%s against %.40s: the quick check accepts what the library refuses", tt.schema, tt.data)
		}
		if got := v.ValidateValue(doc) == nil; got != tt.valid {
			t.Errorf("%s against %.40s: valid = %v, want %v", tt.schema, tt.data, got, tt.valid)
		}
		if got := v.ValidateJSON([]byte(tt.data)) == nil; got != tt.valid {
			t.Errorf("%s against %.40s: ValidateJSON valid = %v, want %v", tt.schema, tt.data, got, tt.valid)
		}
	}
}

// TestQuickCheckNeverAcceptsMore generates schemas from every keyword the
// quick check reads, and data to match, and requires that whatever the
// quick check accepts the library accepts too, compact or indented. It
// also requires the quick check to accept most of what the library
// accepts, or it would save nothing.
func TestQuickCheckNeverAcceptsMore(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	g := &gen{r: r}
	runs, libValid, quickToo := 0, 0, 0
	for range 3000 {
		schemaDoc := g.schema(3, true)
		raw, err := json.Marshal(schemaDoc)
		if err != nil {
			t.Fatal(err)
		}
		v, err := Compile(raw)
		if err != nil {
			continue // the generator may write what the library refuses to compile
		}
		if v.quick == nil {
			t.Fatalf("%s: no quick check for a schema of keywords it reads", raw)
		}
		for range 20 {
			data, _ := json.Marshal(g.value(3))
			doc := decode(t, string(data))
			runs++
			lib := v.schema.Validate(doc) == nil
			quick := quickValid(v, data)
			if quick && !lib {
				t.Fatalf("schema %s\ndata %s\nthe quick check accepts what the library refuses", raw, data)
			}
			if indented, _ := json.MarshalIndent(doc, " ", "\t"); quickValid(v, indented) != quick {
				t.Fatalf("schema %s\ndata %s\nthe quick check reads it indented as valid = %v", raw, indented, !quick)
			}
			if lib {
				libValid++
				if quick {
					quickToo++
				}
			}
		}
	}
	t.Logf("%d checks: the library accepted %d, the quick check %d of those", runs, libValid, quickToo)
	if libValid < runs/10 || quickToo < libValid*8/10 {
		t.Errorf("the library accepted %d of %d and the quick check %d of those: the generator or the check is off", libValid, runs, quickToo)
	}
}

// gen writes random schemas and data from small pools, so that data often
// matches.
type gen struct{ r *rand.Rand }

var (
	genNames    = []string{"a", "b", "c", `q"`}
	genTypes    = []string{"null", "boolean", "object", "array", "number", "string", "integer"}
	genPatterns = []string{"^a", "b$", "[0-9]", "^$"}
	genNumbers  = []string{"0", "1", "-1", "2.5", "1.0", "1e2", "10"}
	genStrings  = []string{"", "a", "ab", "ba1", "é", "aé", `a\`, `"`, "<"}
)

func (g *gen) pick(list []string) string { return list[g.r.IntN(len(list))] }

func (g *gen) schema(depth int, root bool) any {
	if !root && g.r.IntN(12) == 0 {
		return g.r.IntN(4) != 0 // true mostly
	}
	s := map[string]any{}
	keywords := 1 + g.r.IntN(3)
	for range keywords {
		switch k := g.r.IntN(15); {
		case k < 3:
			if g.r.IntN(2) == 0 {
				s["type"] = g.pick(genTypes)
			} else {
				s["type"] = []string{g.pick(genTypes), g.pick(genTypes[:3])}
			}
		case k == 3:
			s["required"] = []string{g.pick(genNames)}
		case k == 4 && depth > 0:
			props := map[string]any{}
			for range 1 + g.r.IntN(2) {
				props[g.pick(genNames)] = g.schema(depth-1, false)
			}
			s["properties"] = props
		case k == 5 && depth > 0:
			s["additionalProperties"] = g.schema(depth-1, false)
		case k == 6 && depth > 0:
			s["items"] = g.schema(depth-1, false)
		case k == 7 && depth > 0:
			s["anyOf"] = []any{g.schema(depth-1, false), g.schema(depth-1, false)}
		case k == 8 && depth > 0:
			s["allOf"] = []any{g.schema(depth-1, false)}
		case k == 9:
			if g.r.IntN(2) == 0 {
				s["const"] = g.value(1)
			} else {
				s["enum"] = []any{g.value(1), g.value(1)}
			}
		case k == 10:
			s[g.pick([]string{"minLength", "maxLength", "minItems", "maxItems"})] = json.Number(fmt.Sprint(g.r.IntN(3)))
		case k == 11:
			s[g.pick([]string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})] = json.Number(g.pick(genNumbers))
		case k == 12:
			s["pattern"] = g.pick(genPatterns)
		case k == 13:
			if g.r.IntN(2) == 0 {
				s["$ref"] = "#"
			} else {
				s["$ref"] = "#/$defs/d"
			}
		default:
			s[g.pick([]string{"title", "description", "format"})] = "date-time"
		}
	}
	if root {
		s["$defs"] = map[string]any{"d": g.schema(depth-1, false)}
	}
	return s
}

func (g *gen) value(depth int) any {
	switch k := g.r.IntN(8); {
	case k == 0:
		return nil
	case k == 1:
		return g.r.IntN(2) == 0
	case k == 2:
		return json.Number(g.pick(genNumbers))
	case k == 3:
		return g.pick(genStrings)
	case k < 6 && depth > 0:
		obj := map[string]any{}
		for range g.r.IntN(3) {
			obj[g.pick(genNames)] = g.value(depth - 1)
		}
		return obj
	case depth > 0:
		var arr []any
		for range g.r.IntN(3) {
			arr = append(arr, g.value(depth-1))
		}
		if arr == nil {
			arr = []any{}
		}
		return arr
	}
	return g.pick(genStrings)
}

// TestQuickCheckCatalogMutations: every built-in type's example, changed
// one member at a time (removed, or given another kind of value), is
// accepted by the quick check only where the library accepts it too.
func TestQuickCheckCatalogMutations(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	replacements := []any{nil, true, json.Number("1"), json.Number("-1.5"), "", "x", map[string]any{}, []any{}}
	changed := 0
	for _, et := range cat.All() {
		v, err := Compile(et.Schema)
		if err != nil {
			t.Fatal(err)
		}
		doc := decode(t, string(et.Example))
		check := func() {
			changed++
			var buf bytes.Buffer
			_ = json.NewEncoder(&buf).Encode(doc)
			if quickValid(v, bytes.TrimSpace(buf.Bytes())) && v.schema.Validate(doc) != nil {
				t.Fatalf("%s: the quick check accepts what the library refuses: %s", et.Name, buf.String())
			}
		}
		var mutate func(cur any)
		mutate = func(cur any) {
			switch x := cur.(type) {
			case map[string]any:
				for k, val := range x {
					delete(x, k)
					check()
					for _, rep := range replacements {
						x[k] = rep
						check()
					}
					x[k] = val
					mutate(val)
				}
				x["zz_extra"] = "x"
				check()
				delete(x, "zz_extra")
			case []any:
				for i, val := range x {
					for _, rep := range replacements {
						x[i] = rep
						check()
					}
					x[i] = val
					mutate(val)
				}
			}
		}
		mutate(doc)
	}
	if changed < 1000 {
		t.Errorf("only %d changed examples checked", changed)
	}
}

// FuzzQuickCheckText: the quick check never fails on any text, and what it
// accepts as valid JSON the library accepts.
func FuzzQuickCheckText(f *testing.F) {
	f.Add(`{"a":"x","b":[1,2],"c":{"d":null}}`)
	f.Add(`{"a":"x\"","b":[1,2.5e3],"c":{"a":true}}`)
	f.Add(`[{"a":1},{"b":"é"}]`)
	f.Add(`{"a":"x",}`)
	f.Add(`{"a" "x"}`)
	f.Add(`"unterminated`)
	v, err := Compile(json.RawMessage(`{"type":["object","array"],"required":["a"],
		"properties":{"a":{"type":"string","maxLength":3},"b":{"items":{"type":"integer","minimum":0}},"c":{"$ref":"#"}},
		"additionalProperties":{"anyOf":[{"type":"null"},{"const":"é"}]},"items":{"$ref":"#"}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data string) {
		ok := quickValid(v, []byte(data))
		if !ok || !json.Valid([]byte(data)) {
			return
		}
		if doc := decode(t, data); v.schema.Validate(doc) != nil {
			t.Fatalf("%s: the quick check accepts as text what the library refuses", data)
		}
	})
}

// TestQuickCheckBoundsWork: a schema that reads long data again for each
// of many branches gives up within its budget, and the library's cost
// bound then answers, instead of reading hundreds of megabytes.
func TestQuickCheckBoundsWork(t *testing.T) {
	branches := strings.Repeat(`{"properties":{"b":{"type":"string"}},"required":["a"]},`, 600)
	v := mustCompile(t, `{"anyOf":[`+branches+`{"required":["a"]}]}`)
	data := []byte(`{"b":"` + strings.Repeat("x", 200<<10) + `","c":[` + strings.Repeat(`"y",`, 10000) + `"y"]}`)
	c := quickCheck{budget: MaxCost}
	start := time.Now()
	if c.valid(v.quick, data) {
		t.Fatal("the quick check accepts data missing a required member")
	}
	if c.budget >= 0 {
		t.Errorf("the quick check finished within its budget (%d left): the test reads too little", c.budget)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("the quick check took %v", d)
	}
}
