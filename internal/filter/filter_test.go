package filter

import (
	"strings"
	"testing"
	"time"
)

func TestCompileAndMatch(t *testing.T) {
	env := Env{ID: "evt_1", Type: "payment.succeeded", Source: "shop", OccurredAt: time.Unix(0, 0),
		Data: map[string]any{"total_amount": 6000.0, "customer": map[string]any{"email": "a@example.com"}}}
	cases := []struct {
		src  string
		want bool
	}{
		{`data.total_amount >= 5000 && source != "admin"`, true},
		{`data.total_amount < 5000`, false},
		{`type startsWith "payment."`, true},
		{`data.customer.email endsWith "@example.com"`, true},
		{`source in ["shop", "funnel"]`, true},
	}
	for _, c := range cases {
		p, err := Compile(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		got, err := p.Match(env)
		if err != nil || got != c.want {
			t.Errorf("%s = %v, %v; want %v", c.src, got, err, c.want)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	for _, src := range []string{
		`data.total_amount +`,            // syntax
		`unknown_field == 1`,             // not in env
		strings.Repeat("a", MaxLength+1), // too long
	} {
		if _, err := Compile(src); err == nil {
			t.Errorf("Compile(%.40q) succeeded, want error", src)
		}
	}
}

func TestMissingFieldIsNoMatch(t *testing.T) {
	p, err := Compile(`data.missing.deep > 3`)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := p.Match(Env{Data: map[string]any{}})
	if ok {
		t.Fatal("missing field matched")
	}
	if err == nil {
		t.Fatal("want an evaluation error to log")
	}
}

func TestCache(t *testing.T) {
	var c Cache
	a, err := c.Get(`source == "shop"`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Get(`source == "shop"`)
	if a != b {
		t.Fatal("cache compiled twice")
	}
	if _, err := c.Get(`(`); err == nil {
		t.Fatal("bad filter cached as good")
	}
}
