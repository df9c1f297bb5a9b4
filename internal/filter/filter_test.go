package filter

import (
	"runtime"
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

// A short filter must not build a huge value on every publish: each of
// these would allocate 200 MB or more; they fail (no match) having
// allocated little.
func TestFiltersCannotBuildHugeValues(t *testing.T) {
	k := strings.Repeat("x", 1000)
	for name, src := range map[string]string{
		"repeat": `len(repeat(repeat('x', 1000), 200000)) > 0`,
		"join":   `len(join(map(1..200000, '` + k + `'), '')) > 0`,
		"plus":   `let a = repeat('x', 1000); let b = a+a+a+a+a+a+a+a+a+a; let c = b+b+b+b+b+b+b+b+b+b; let d = c+c+c+c+c+c+c+c+c+c; let e = d+d+d+d+d+d+d+d+d+d; len(e+e) > 0`,
		"toJSON": `len(toJSON(map(1..200000, data))) > 0`,
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Compile(src)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ok, err := p.Match(Env{Data: map[string]any{"s": k}})
			runtime.ReadMemStats(&after)
			if ok || err == nil {
				t.Fatalf("matched %v, err %v: want an error", ok, err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
				t.Errorf("allocated %d MB before failing", n>>20)
			}
		})
	}
	// Ordinary filters still work.
	p, err := Compile(`toJSON(data) != "" && len(data.s + "y") == 1001`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Match(Env{Data: map[string]any{"s": k}}); !ok || err != nil {
		t.Fatalf("an ordinary filter: %v %v", ok, err)
	}
}
