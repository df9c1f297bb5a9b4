package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fanSchema is n levels of anyOf whose two branches lead to the same next
// level: the library's work doubles per level.
func fanSchema(n int) string {
	var b strings.Builder
	b.WriteString(`{"$ref":"#/$defs/d0","$defs":{`)
	for i := range n {
		fmt.Fprintf(&b, `"d%d":{"anyOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]},`, i, i+1, i+1)
	}
	fmt.Fprintf(&b, `"d%d":false}}`, n)
	return b.String()
}

// TestValidateBoundsWork: schemas and data that would make the library work
// for minutes or hours are refused within a fraction of a second, with an
// error on data that says what to change.
func TestValidateBoundsWork(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	nums := make([]string, 30000)
	for i := range nums {
		nums[i] = fmt.Sprint(i)
	}
	tests := []struct{ name, schema, data string }{
		{"anyOf fan 40", fanSchema(40), `{}`},
		{"doubling recursion", `{"allOf":[{"properties":{"a":{"$ref":"#"}}},{"properties":{"a":{"$ref":"#"}}}]}`, deep(40)},
		{"uniqueItems on a long array", `{"uniqueItems":true}`, "[" + strings.Join(nums, ",") + "]"},
		{"many branches per item", `{"items":{"anyOf":[` + strings.Repeat(`{"type":"string"},`, 200) + `{"type":"string"}]}}`, "[" + strings.Join(nums, ",") + "]"},
	}
	for _, tt := range tests {
		v := mustCompile(t, tt.schema)
		start := time.Now()
		got := v.Validate(json.RawMessage(tt.data))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %v", tt.name, d)
		}
		if len(got) != 1 || got[0].Field != "data" || !strings.Contains(got[0].Detail, "too costly") {
			t.Errorf("%s: got %v, want one error on data about cost", tt.name, got)
		}
	}
}

// TestValidateWorkWithinBudget: recursive schemas that do linear work, and
// the largest ordinary payloads, are checked as usual.
func TestValidateWorkWithinBudget(t *testing.T) {
	tree := mustCompile(t, `{"type":"array","items":{"$ref":"#"}}`)
	if got := tree.Validate(json.RawMessage(strings.Repeat("[", 5000) + strings.Repeat("]", 5000))); got != nil {
		t.Errorf("deep tree: %v", got)
	}
	if got := tree.Validate(json.RawMessage(`[[], [1]]`)); len(got) != 1 || got[0].Field != "data[1][0]" {
		t.Errorf("tree with a number: %v", got)
	}
	v := mustCompile(t, orderSchema)
	items := make([]string, 5000)
	for i := range items {
		items[i] = fmt.Sprintf(`{"product_id":"p%d","quantity":%d}`, i, i)
	}
	data := `{"order_id":"o1","total_amount":5,"customer":{"email":"a@b.c"},"product_cart":[` + strings.Join(items, ",") + `]}`
	if got := v.Validate(json.RawMessage(data)); got != nil {
		t.Errorf("large order: %v", got)
	}
}

func TestCompileRefusesHugeSchemas(t *testing.T) {
	deep := strings.Repeat(`{"properties":{"a":`, 100) + "{}" + strings.Repeat("}}", 100)
	var wide strings.Builder
	wide.WriteString(`{"properties":{`)
	for i := range 6000 {
		fmt.Fprintf(&wide, `"p%d":{},`, i)
	}
	wide.WriteString(`"last":{}}}`)
	for _, s := range []string{deep, wide.String()} {
		start := time.Now()
		_, err := Compile(json.RawMessage(s))
		if err == nil || !strings.Contains(err.Error(), "at most") {
			t.Errorf("Compile(%.60s…) = %v, want a size error", s, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refusing took %v", d)
		}
	}
}
