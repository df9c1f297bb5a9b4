package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/heraldhq/herald/internal/catalog"
)

// general decodes body the way the API's general path does: one value,
// strictly into Input.
func general(body []byte) (Input, error) {
	var in Input
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, err
	}
	if dec.More() {
		return in, errTrailing
	}
	return in, nil
}

var errTrailing = errors.New("more than one value")

// agree fails t unless DecodeInput either declines body or reads exactly
// what the general path reads.
func agree(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	got, ok := DecodeInput(body)
	if !ok {
		return false
	}
	want, err := general(body)
	if err != nil {
		t.Fatalf("DecodeInput accepted %q, which the general path refuses: %v", body, err)
	}
	if got.Data != nil && got.compact != isCompact(got.Data) {
		t.Fatalf("DecodeInput(%q) reads data as compact = %v", body, got.compact)
	}
	got.compact = false
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeInput(%q) = %+v; the general path reads %+v", body, got, want)
	}
	return true
}

var plainBodies = []string{
	`{"type":"order.completed","source":"shop","data":{"id":1}}`,
	`{}`,
	` { "type" : "order.completed" , "data" : { "a" : [ 1 , -2.5e+3 , 0 , 0.25E-2 , true , false , null , "x" , { } , [ ] ] } } `,
	"{\n\t\"data\": {\"s\": \"tab\\tquote\\\"slash\\/back\\\\nl\\nu\\u00e9\\uD83D\\uDE00\"},\r\n\"type\":\"t\"}",
	`{"data":{"lone":"\ud800x","pair":"\uD83D\uDE00","swapped":"\udc00\ud800","hi-then-escape":"\ud800\n"}}`,
	`{"type":null,"source":null,"occurred_at":null,"idempotency_key":null,"data":null}`,
	`{"occurred_at":"2026-11-24T10:00:00Z","idempotency_key":"k-1","data":{"dup":1,"dup":2}}`,
	`{"occurred_at":"2026-11-24T10:00:00.123456789+02:00","data":{"n":-0,"big":123456789012345678901234567890}}`,
	`{"data":{"ünïcödé":"日本語","emoji":"😀"}}`,
	`{"data":[1,2,3]}`,
	`{"data":"a string"}`,
}

func TestDecodeInputAgreesWithTheGeneralPath(t *testing.T) {
	for _, b := range plainBodies {
		if !agree(t, []byte(b)) {
			t.Errorf("DecodeInput declined a plain body: %s", b)
		}
	}
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range cat.All() {
		body, _ := json.MarshalIndent(map[string]any{"type": et.Name, "data": et.Example}, "", "  ")
		if !agree(t, body) {
			t.Errorf("DecodeInput declined the example of %s", et.Name)
		}
	}
}

func TestDecodeInputDeclinesWhatItDoesNotRead(t *testing.T) {
	for _, b := range []string{
		``, ` `, `null`, `[]`, `"x"`, `{`, `{"type":"a"`, `{"type":"a",}`, `{"type":"a"} {}`, `{"type":"a"}x`,
		`{"Type":"a"}`, `{"t\u0079pe":"a"}`, `{"extra":1}`, `{"type":"a","type":"b"}`, `{"type":1}`, `{"type":{}}`,
		`{"occurred_at":"yesterday"}`, `{"occurred_at":5}`, `{"data":{"a":01}}`, `{"data":{"a":1.}}`, `{"data":{"a":.5}}`,
		`{"data":{"a":-}}`, `{"data":{"a":1e}}`, `{"data":{"a":+1}}`, `{"data":{"a":tru}}`, `{"data":{"a":"\x"}}`,
		`{"data":{"a":"\u12"}}`, "{\"data\":{\"a\":\"raw\ttab\"}}", "{\"data\":{\"a\":\"\xff\"}}", `{"data":{"a" 1}}`,
		`{"data":{1:2}}`, `{"data":[1,]}`, `{"data":[1 2]}`, `{"data":NaN}`, `{"data":{"a":"unterminated}}`,
	} {
		if _, ok := DecodeInput([]byte(b)); ok {
			t.Errorf("DecodeInput accepted %q", b)
		}
	}
	deep := bytes.Repeat([]byte("["), maxDepth+1)
	if _, ok := DecodeInput([]byte(`{"data":` + string(deep) + string(bytes.Repeat([]byte("]"), maxDepth+1)) + `}`)); ok {
		t.Error("DecodeInput accepted data nested deeper than maxDepth")
	}
}

func FuzzDecodeInput(f *testing.F) {
	for _, b := range plainBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"data":{"a":"\ud83d\ude00\u0000"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		agree(t, body)
	})
}

// BenchmarkDecodeInput compares reading a publish body in one pass with
// the general path's strict decoding.
func BenchmarkDecodeInput(b *testing.B) {
	cat, err := catalog.Load()
	if err != nil {
		b.Fatal(err)
	}
	et, _ := cat.Lookup("order.completed")
	body, _ := json.Marshal(map[string]any{"type": et.Name, "source": "shop", "data": et.Example})
	b.Run("one-pass", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, ok := DecodeInput(body); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := general(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPlain: plain stops at the word holding the first quote, backslash
// or control character, and never before it, wherever that byte falls.
func TestPlain(t *testing.T) {
	for _, special := range []byte{'"', '\\', 0x00, 0x1f, '\n'} {
		for at := range 40 {
			b := bytes.Repeat([]byte("aé\x7f\xff~ "), 7)[:40]
			b[at] = special
			want := at / 8 * 8
			if got := plain(b); got != want {
				t.Errorf("byte %#x at %d: plain = %d, want %d", special, at, got, want)
			}
		}
	}
	if got := plain(bytes.Repeat([]byte{0x20, 0x7f, 0x80, 0xff, '!', '#', '[', ']'}, 4)); got != 32 {
		t.Errorf("ordinary bytes only: plain = %d, want 32", got)
	}
	if got := plain([]byte("abcdefg")); got != 0 {
		t.Errorf("less than a word: plain = %d, want 0", got)
	}
}
