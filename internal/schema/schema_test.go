package schema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

const orderSchema = `{
  "type": "object",
  "required": ["order_id", "total_amount", "customer"],
  "properties": {
    "order_id": {"type": "string"},
    "total_amount": {"type": "integer", "minimum": 0},
    "status": {"enum": ["paid", "refunded"]},
    "note": {"type": ["string", "null"]},
    "customer": {"$ref": "#/$defs/customer"},
    "product_cart": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["product_id", "quantity"],
        "properties": {
          "product_id": {"type": "string"},
          "quantity": {"type": "integer"}
        }
      }
    },
    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    "ref": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
  },
  "$defs": {
    "customer": {
      "type": "object",
      "required": ["email"],
      "properties": {"email": {"type": "string"}, "name": {"type": "string"}}
    }
  }
}`

func mustCompile(t *testing.T, raw string) *Validator {
	t.Helper()
	v, err := Compile(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return v
}

func TestValidate(t *testing.T) {
	v := mustCompile(t, orderSchema)
	tests := []struct {
		name string
		data string
		want []herald.FieldError
	}{
		{
			name: "valid",
			data: `{"order_id":"ord_1","total_amount":4700,"status":"paid","note":null,"extra":true,
				"customer":{"email":"ana@example.com"},"product_cart":[{"product_id":"p1","quantity":2}],
				"metadata":{"campaign":"spring"},"ref":7}`,
			want: nil,
		},
		{
			name: "required missing",
			data: `{"customer":{"email":"ana@example.com"}}`,
			want: []herald.FieldError{
				{Field: "data.order_id", Detail: "is required"},
				{Field: "data.total_amount", Detail: "is required"},
			},
		},
		{
			name: "wrong type",
			data: `{"order_id":"ord_1","total_amount":"47.00","customer":{"email":"ana@example.com"}}`,
			want: []herald.FieldError{{Field: "data.total_amount", Detail: "must be integer, got string"}},
		},
		{
			name: "nested path through $ref",
			data: `{"order_id":"ord_1","total_amount":1,"customer":{"name":"Ana"}}`,
			want: []herald.FieldError{{Field: "data.customer.email", Detail: "is required"}},
		},
		{
			name: "array index path",
			data: `{"order_id":"ord_1","total_amount":1,"customer":{"email":"a@b.c"},
				"product_cart":[{"product_id":"p1","quantity":1},{"product_id":"p2","quantity":"2"}]}`,
			want: []herald.FieldError{{Field: "data.product_cart[1].quantity", Detail: "must be integer, got string"}},
		},
		{
			name: "required inside array item",
			data: `{"order_id":"ord_1","total_amount":1,"customer":{"email":"a@b.c"},"product_cart":[{"quantity":1}]}`,
			want: []herald.FieldError{{Field: "data.product_cart[0].product_id", Detail: "is required"}},
		},
		{
			name: "enum, minimum, nullable",
			data: `{"order_id":"ord_1","total_amount":-5,"status":"lost","note":3,"customer":{"email":"a@b.c"}}`,
			want: []herald.FieldError{
				{Field: "data.note", Detail: "must be string or null, got number"},
				{Field: "data.status", Detail: `must be one of "paid", "refunded"`},
				{Field: "data.total_amount", Detail: "must be at least 0"},
			},
		},
		{
			name: "odd member names are quoted",
			data: `{"order_id":"ord_1","total_amount":1,"customer":{"email":"a@b.c"},"metadata":{"utm.source":1}}`,
			want: []herald.FieldError{{Field: `data.metadata["utm.source"]`, Detail: "must be string, got number"}},
		},
		{
			name: "anyOf of types reads as one error",
			data: `{"order_id":"ord_1","total_amount":1,"customer":{"email":"a@b.c"},"ref":true}`,
			want: []herald.FieldError{{Field: "data.ref", Detail: "must be string or integer, got boolean"}},
		},
		{
			name: "not an object",
			data: `[1,2]`,
			want: []herald.FieldError{{Field: "data", Detail: "must be object, got array"}},
		},
		{
			name: "empty",
			data: ``,
			want: []herald.FieldError{{Field: "data", Detail: "is required"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v.Validate(json.RawMessage(tt.data))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate(%s)\n got %#v\nwant %#v", tt.data, got, tt.want)
			}
		})
	}
}

func TestValidateInvalidJSON(t *testing.T) {
	v := mustCompile(t, orderSchema)
	for _, data := range []string{`{`, `{"a":}`, `{"a":1} trailing`, `nul`, "\xff"} {
		got := v.Validate(json.RawMessage(data))
		if len(got) != 1 || got[0].Field != "data" || !strings.HasPrefix(got[0].Detail, "must be valid JSON") {
			t.Errorf("Validate(%q) = %#v, want one FieldError on data about JSON", data, got)
		}
	}
}

// TestValidateNeverPanics throws odd documents at a few schemas.
func TestValidateNeverPanics(t *testing.T) {
	schemas := []string{orderSchema, `true`, `false`, `{}`, `{"type":"array","items":{"$ref":"#"}}`,
		`{"properties":{"a":{"pattern":"^x+$","minLength":2,"multipleOf":0.5}}}`}
	docs := []string{`null`, `0`, `1e400`, `-0`, `"x"`, `[]`, `{}`, `[[[[[[[[[[]]]]]]]]]]`,
		`{"a":"xxx"}`, `{"a":1.25}`, `{"order_id":{"$ref":"#"}}`, strings.Repeat("[", 5000) + strings.Repeat("]", 5000)}
	for _, s := range schemas {
		v := mustCompile(t, s)
		for _, d := range docs {
			_ = v.Validate(json.RawMessage(d))
		}
	}
	if got := mustCompile(t, `false`).Validate(json.RawMessage(`{}`)); len(got) == 0 {
		t.Error("false schema accepted data")
	}
}

func TestValidateCapsErrors(t *testing.T) {
	v := mustCompile(t, `{"type":"array","items":{"type":"integer"}}`)
	items := make([]string, 200)
	for i := range items {
		items[i] = fmt.Sprintf("%q", "x")
	}
	got := v.Validate(json.RawMessage("[" + strings.Join(items, ",") + "]"))
	if len(got) != MaxFieldErrors {
		t.Fatalf("got %d errors, want %d", len(got), MaxFieldErrors)
	}
	if last := got[len(got)-1]; last.Field != "data" || !strings.Contains(last.Detail, "151 more") {
		t.Errorf("last error = %#v, want a summary of the 151 others", last)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		schema string
		want   string
	}{
		{``, "empty"},
		{`{"type":`, "not valid JSON"},
		{`[1]`, "must be a JSON object"},
		{`{"type":"objekt"}`, "schema.type"},
		{`{"required":"id"}`, "schema.required: must be array"},
		{`{"properties":{"n":{"minimum":"1"}}}`, "schema.properties.n.minimum"},
		{`{"pattern":"("}`, "schema.pattern"},
		{`{"$ref":"#/$defs/missing"}`, "not found"},
		{`{"$ref":"https://example.com/customer.json"}`, "external references are not allowed"},
		{`{"$ref":"customer.json"}`, "external references are not allowed"},
		{`{"$ref":"file:///etc/passwd"}`, "external references are not allowed"},
		{`{"$schema":"https://example.com/my-meta"}`, "external references are not allowed"},
	}
	for _, tt := range tests {
		_, err := Compile(json.RawMessage(tt.schema))
		if err == nil {
			t.Errorf("Compile(%s) succeeded, want an error", tt.schema)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%s) = %q, want it to mention %q", tt.schema, err, tt.want)
		}
	}
}

func TestCompileDraft(t *testing.T) {
	// Without "$schema" the draft is 2020-12: prefixItems is understood.
	v := mustCompile(t, `{"prefixItems":[{"type":"string"}]}`)
	if got := v.Validate(json.RawMessage(`[1]`)); len(got) != 1 || got[0].Field != "data[0]" {
		t.Errorf("prefixItems not applied: %#v", got)
	}
	// An explicit older draft is honoured too, from the embedded meta-schemas.
	v = mustCompile(t, `{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}]}`)
	if got := v.Validate(json.RawMessage(`[1]`)); len(got) != 1 || got[0].Field != "data[0]" {
		t.Errorf("draft-07 items array not applied: %#v", got)
	}
}

// TestValidateConcurrent: one Validator serves many requests at once (run
// with -race).
func TestValidateConcurrent(t *testing.T) {
	v := mustCompile(t, orderSchema)
	done := make(chan bool)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 50; j++ {
				v.Validate(json.RawMessage(`{"order_id":1,"customer":{},"product_cart":[{"quantity":"x"}]}`))
			}
			done <- true
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
}
