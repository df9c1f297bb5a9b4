package action_test

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/action"
)

// A short template must not be able to build a huge value: each of these
// would allocate 100 MB or more (some, scaled up a little, terabytes) and
// must fail for the event instead, having allocated little.
func TestTemplatesCannotBuildHugeValues(t *testing.T) {
	k := strings.Repeat("x", 1000)
	cases := map[string]string{
		"plus":    `{{ let a = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'; let b = a+a+a+a+a+a+a+a; let c = b+b+b+b+b+b+b+b; let d = c+c+c+c+c+c+c+c; let e = d+d+d+d+d+d+d+d; let f = e+e+e+e+e+e+e+e; let g = f+f+f+f+f+f+f+f; let h = g+g+g+g+g+g+g+g; len(h) }}`,
		"repeat":  `{{ len(repeat(repeat('x', 1000), 200000)) }}`,
		"join":    `{{ len(join(map(1..200000, '` + k + `'), '')) }}`,
		"glue":    `{{ len(join(map(1..200000, ''), '` + k + `')) }}`,
		"replace": `{{ len(replace(join(map(1..10000, 'x'), ''), '', join(map(1..20000, 'y'), ''))) }}`,
		"toJSON":  `{{ len(toJSON(map(1..200000, data))) }}`,
		"string":  `{{ len(string(map(1..200000, data))) }}`,
		"concat":  `{{ let a = map(1..900, data); let b = concat(a,a,a,a,a,a,a,a,a,a); let c = concat(b,b,b,b,b,b,b,b,b,b); let d = concat(c,c,c,c,c,c,c,c,c,c); len(toJSON(d)) }}`,
		"value":   `{{ map(1..200000, data) }}`,
	}
	e := event(t, "order.completed", `{"s": "`+k+`"}`)
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			for _, a := range []*herald.Action{
				{Body: json.RawMessage(`{"v": "` + src + `"}`)},
				{Headers: map[string]string{"X-V": src}},
			} {
				tpl, err := action.Compile("https://example.com/x", a)
				if err != nil {
					t.Fatalf("compile: %v", err)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				_, err = tpl.Render(e)
				runtime.ReadMemStats(&after)
				if err == nil {
					t.Fatalf("rendered; want an error")
				}
				if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
					t.Fatalf("allocated %d MB before failing: %v", n>>20, err)
				}
			}
		})
	}
}

// The guards leave ordinary uses alone.
func TestGuardedBuiltinsStillWork(t *testing.T) {
	a := &herald.Action{Body: json.RawMessage(`{"s": "{{ 'a' + type + 'b' }}", "n": "{{ data.n + 1 }}", "j": "{{ join(['x', 'y'], ', ') }}",
		"r": "{{ replace('a-b', '-', '+') }}", "rep": "{{ repeat('ab', 2) }}", "js": "{{ toJSON(data.n) }}", "st": "{{ string(data.n) }}",
		"c": "{{ concat([1], [2]) }}", "f": "{{ flatten([[1], [2]]) }}"}`)}
	req := render(t, "https://example.com/x", a, event(t, "t.x", `{"n": 2}`))
	want := `{"s":"at.xb","n":3,"j":"x, y","r":"a+b","rep":"abab","js":"2","st":"2","c":[1,2],"f":[1,2]}`
	if string(req.Body) != want {
		t.Fatalf("body\n got %s\nwant %s", req.Body, want)
	}
}

// net/http refuses a header value with a control character when sending;
// that must be a template failure, not a connection error that is retried.
func TestRenderedHeaderControlCharacterFails(t *testing.T) {
	for _, s := range []string{`a\u0001b`, `a\u007fb`, `a\rb`} {
		tpl, err := action.Compile("https://example.com/x", &herald.Action{Headers: map[string]string{"X-V": "{{ data.s }}"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tpl.Render(event(t, "t.x", `{"s": "`+s+`"}`)); err == nil {
			t.Fatalf("%s: rendered; want an error", s)
		}
	}
	req := render(t, "https://example.com/x", &herald.Action{Headers: map[string]string{"X-V": "{{ data.s }}"}}, event(t, "t.x", `{"s": "a\tb"}`))
	if req.Header.Get("X-V") != "a\tb" {
		t.Fatalf("a tab is allowed: %q", req.Header.Get("X-V"))
	}
}
