package publish

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestCompactMatchesEncodingJSON: compact (which skips data that is
// already compact) gives exactly what json.Compact gives.
func TestCompactMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"a":1}`,
		`{ "a": 1 }`,
		"{\"a\":\n[1,\t2]\r}",
		`{"s":"with spaces and \"quotes\" and \\ backslash "}`,
		`{"s":"a\\"}`,
		`{"s":"a\\\" b"}`,
		`{"s":"tab\tinside","t" :1}`,
		`{"n":null,"b":true,"x":[{"y":"z z"}]}`,
		`{"u":"\u00e9 \u2028"}`,
		`{}`,
	} {
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := compact(json.RawMessage(in)); string(got) != want.String() {
			t.Errorf("compact(%q) = %q, want %q", in, got, want.String())
		}
		if isCompact([]byte(in)) != (in == want.String()) {
			t.Errorf("isCompact(%q) = %v", in, isCompact([]byte(in)))
		}
	}
}

func FuzzCompact(f *testing.F) {
	f.Add(`{"a":"b c","d":[1, 2]}`)
	f.Add(`{"s":"x\\\" y"}`)
	f.Fuzz(func(t *testing.T, in string) {
		if !json.Valid([]byte(in)) {
			return
		}
		var want bytes.Buffer
		_ = json.Compact(&want, []byte(in))
		if got := compact(json.RawMessage(in)); string(got) != want.String() {
			t.Errorf("compact(%q) = %q, want %q", in, got, want.String())
		}
	})
}

func BenchmarkCompact(b *testing.B) {
	data := json.RawMessage(`{"order":{"id":"1001","state":"complete","buyer_email":"jane@example.com","note":"` + strings.Repeat("x y", 300) + `"}}`)
	b.Run("already compact", func(b *testing.B) {
		for b.Loop() {
			compact(data)
		}
	})
	b.Run("json.Compact", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			_ = json.Compact(&buf, data)
		}
	})
}
