package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// loadOpenAPI parses the embedded document into plain maps and slices.
func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(OpenAPIDocument(), &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	return doc
}

func TestOpenAPIVersion(t *testing.T) {
	doc := loadOpenAPI(t)
	v, _ := doc["openapi"].(string)
	if !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi: %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs a title and a version: %v", info)
	}
}

// routePattern finds the routes Handler registers, such as
// mux.Handle("GET /v1/tenants/{tenant}", …).
var routePattern = regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)

// registeredRoutes reads api.go's source: every "METHOD /path" it registers.
// The catch-all "/v1/" has no method and is not matched.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("api.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range routePattern.FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1]+" "+m[2])
	}
	if len(out) < 30 {
		t.Fatalf("found only %d routes in api.go; has the registration style changed?", len(out))
	}
	return out
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// documentedRoutes lists "METHOD /path" for every operation of the document.
func documentedRoutes(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("the document has no paths")
	}
	var out []string
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method := range ops {
			if slices.Contains(httpMethods, method) {
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	return out
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	registered := registeredRoutes(t)
	documented := documentedRoutes(t, doc)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered in api.go but not described in openapi.yaml", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("openapi.yaml describes %s, which api.go does not register", r)
		}
	}
}

// walk calls fn for every map in v, with its JSON pointer.
func walk(v any, ptr string, fn func(ptr string, m map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(ptr, x)
		for k, c := range x {
			walk(c, ptr+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k), fn)
		}
	case []any:
		for i, c := range x {
			walk(c, ptr+"/"+strconv.Itoa(i), fn)
		}
	}
}

// resolve follows a local JSON pointer ("#/components/schemas/Tenant").
func resolve(doc map[string]any, ref string) bool {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return false
			}
			cur = c[i]
		default:
			return false
		}
	}
	return true
}

func TestOpenAPIRefsResolve(t *testing.T) {
	doc := loadOpenAPI(t)
	n := 0
	walk(doc, "#", func(ptr string, m map[string]any) {
		ref, ok := m["$ref"]
		if !ok {
			return
		}
		n++
		s, isString := ref.(string)
		if !isString || !resolve(doc, s) {
			t.Errorf("%s: $ref %v does not resolve", ptr, ref)
		}
	})
	if n == 0 {
		t.Fatal("found no $ref at all")
	}
}

// TestOpenAPIOperations checks what every operation needs: a unique
// operationId, at least one response, and a declared parameter for each
// {name} of its path.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	paths := doc["paths"].(map[string]any)
	ids := map[string]string{}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range paths {
		ops := item.(map[string]any)
		declared := func(params any) []string {
			var names []string
			list, _ := params.([]any)
			for _, p := range list {
				pm, _ := p.(map[string]any)
				if ref, ok := pm["$ref"].(string); ok {
					pm = lookup(doc, ref)
				}
				if pm["in"] == "path" {
					names = append(names, pm["name"].(string))
				}
			}
			return names
		}
		shared := declared(ops["parameters"])
		for method, op := range ops {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			where := strings.ToUpper(method) + " " + path
			o := op.(map[string]any)
			id, _ := o["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", where)
			} else if other, dup := ids[id]; dup {
				t.Errorf("%s: operationId %q is also used by %s", where, id, other)
			}
			ids[id] = where
			if rs, _ := o["responses"].(map[string]any); len(rs) == 0 {
				t.Errorf("%s: no responses", where)
			}
			have := append(slices.Clone(shared), declared(o["parameters"])...)
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				if !slices.Contains(have, m[1]) {
					t.Errorf("%s: path parameter %q is not declared", where, m[1])
				}
			}
		}
	}
}

func lookup(doc map[string]any, ref string) map[string]any {
	var cur any = doc
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := cur.(map[string]any)
		cur = m[tok]
	}
	m, _ := cur.(map[string]any)
	return m
}

func TestOpenAPIServed(t *testing.T) {
	h := New(Config{OpenAPI: OpenAPIDocument()}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if string(body) != string(OpenAPIDocument()) {
		t.Fatal("GET /openapi.yaml does not serve the embedded document")
	}
}
