package channel

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// Payload is the body as encoding/json would write it: the oracle Body is
// checked against.
type Payload struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Source    string          `json:"source"`
	Data      json.RawMessage `json:"data"`
}

func testEvent(data string) *herald.Event {
	return &herald.Event{ID: "evt_01JD000000000000000000000", Type: "order.completed", Source: "shop",
		OccurredAt: time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.FixedZone("x", 3600)), Data: json.RawMessage(data)}
}

// TestBodyMatchesEncodingJSON: the hand-written body is byte for byte what
// encoding/json makes of the Payload.
func TestBodyMatchesEncodingJSON(t *testing.T) {
	for _, e := range []*herald.Event{
		testEvent(`{"order":{"id":"1001","total":49.5,"tags":["a","b"],"note":"caf\u00e9 <b>"}}`),
		func() *herald.Event { e := testEvent(`{}`); e.Source = `we"ird\\`; e.Type = "x.é"; return e }(),
	} {
		got := Body(e)
		want, _ := json.Marshal(Payload{ID: e.ID, Type: e.Type, Timestamp: e.OccurredAt.UTC().Format(time.RFC3339Nano), Source: e.Source, Data: e.Data})
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil {
			t.Fatalf("invalid JSON: %s", got)
		}
		if string(got) != string(want) && !jsonEqual(a, b) {
			t.Errorf("body\n%s\nwant\n%s", got, want)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func BenchmarkBody(b *testing.B) {
	e := testEvent(`{"order":{"id":"1001","state":"complete","buyer_email":"jane@example.com","note":"` + string(make([]byte, 0)) + `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = Body(e)
	}
}

func BenchmarkBodyEncodingJSON(b *testing.B) {
	e := testEvent(`{"order":{"id":"1001","state":"complete","buyer_email":"jane@example.com","note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(Payload{ID: e.ID, Type: e.Type, Timestamp: e.OccurredAt.UTC().Format(time.RFC3339Nano), Source: e.Source, Data: e.Data}); err != nil {
			b.Fatal(err)
		}
	}
}
