// Package catalog holds Herald's built-in event types: every event of the
// Dodo Payments webhook list, the SendOwl triggers and the "System
// Notifications" events of store/funnel platforms, each with a title, a
// description, a JSON Schema (draft 2020-12) of its data and an example.
//
// The types live as JSON under data/ and are embedded in the binary:
//
//	data/defs.json          shared schema pieces, {"$defs": {name: schema}}
//	data/types/<group>.json {"types": [{name, title, description, origins, schema, example}]}
//
// A type's "schema" is either the name of an entry of defs.json or a schema
// object; either may refer to shared pieces as "#/$defs/<name>". Load turns
// each into a self-contained schema: the pieces it uses, and only those, are
// copied under its own "$defs", so an API client can use it as it is.
// docs/catalog.md explains the names and the merge decisions.
package catalog

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/heraldhq/herald"
)

//go:embed data
var data embed.FS

// schemaDialect is written into every built-in schema as "$schema".
const schemaDialect = "https://json-schema.org/draft/2020-12/schema"

const defsRef = "#/$defs/"

// Catalog is the built-in set of event types, read once from embedded data.
// It is immutable after Load and safe for concurrent use.
type Catalog struct {
	types  []herald.EventType // sorted by group, then name
	byName map[string]int
	groups []string
}

// fileType is one type as written in data/types/<group>.json.
type fileType struct {
	Name        string          `json:"name"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Origins     []string        `json:"origins"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
}

// Load parses the embedded data. It fails on malformed files, invalid or
// duplicate names, a type filed under the wrong group, missing titles,
// descriptions, origins, schemas or examples, and unknown shared schemas.
func Load() (*Catalog, error) { return load(data) }

// load reads a catalog from fsys, laid out like the embedded data/.
func load(fsys fs.FS) (*Catalog, error) {
	defs, err := loadDefs(fsys)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, "data/types")
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c := &Catalog{byName: map[string]int{}}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".json" {
			continue
		}
		group := strings.TrimSuffix(e.Name(), ".json")
		file := "data/types/" + e.Name()
		var doc struct {
			Types []fileType `json:"types"`
		}
		if err := decodeStrict(fsys, file, &doc); err != nil {
			return nil, err
		}
		for i, ft := range doc.Types {
			et, err := ft.build(group, defs)
			if err != nil {
				return nil, fmt.Errorf("catalog: %s: type %d (%q): %w", file, i, ft.Name, err)
			}
			if _, dup := c.byName[et.Name]; dup {
				return nil, fmt.Errorf("catalog: %s: type %q is defined twice", file, et.Name)
			}
			c.byName[et.Name] = -1
			c.types = append(c.types, et)
		}
	}
	if len(c.types) == 0 {
		return nil, errors.New("catalog: no event types found under data/types")
	}
	sort.Slice(c.types, func(i, j int) bool {
		a, b := c.types[i], c.types[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Name < b.Name
	})
	for i, t := range c.types {
		c.byName[t.Name] = i
		if len(c.groups) == 0 || c.groups[len(c.groups)-1] != t.Group {
			c.groups = append(c.groups, t.Group)
		}
	}
	return c, nil
}

// All returns every type, sorted by group then name. Callers must not
// modify the slice or the types in it.
func (c *Catalog) All() []herald.EventType { return c.types }

// Lookup returns the type named name. The returned type shares its slices
// with the catalog; callers must not modify them.
func (c *Catalog) Lookup(name string) (herald.EventType, bool) {
	i, ok := c.byName[name]
	if !ok {
		return herald.EventType{}, false
	}
	return c.types[i], true
}

// Groups returns the distinct groups, sorted. Callers must not modify it.
func (c *Catalog) Groups() []string { return c.groups }

// origins the built-in catalog may name; "custom" belongs to tenants' types.
var builtinOrigins = map[string]bool{
	herald.OriginDodo:                true,
	herald.OriginSendOwl:             true,
	herald.OriginSystemNotifications: true,
}

func (ft fileType) build(group string, defs map[string]json.RawMessage) (herald.EventType, error) {
	var zero herald.EventType
	if !herald.ValidEventTypeName(ft.Name) {
		return zero, errors.New("name must have the group.action form: lowercase letters, digits and _ around a dot")
	}
	if g := herald.GroupOf(ft.Name); g != group {
		return zero, fmt.Errorf("belongs to group %q, so it must be in data/types/%s.json", g, g)
	}
	if strings.TrimSpace(ft.Title) == "" {
		return zero, errors.New("title is missing")
	}
	if strings.TrimSpace(ft.Description) == "" {
		return zero, errors.New("description is missing")
	}
	if len(ft.Origins) == 0 {
		return zero, errors.New("origins is empty")
	}
	seen := map[string]bool{}
	for _, o := range ft.Origins {
		if !builtinOrigins[o] {
			return zero, fmt.Errorf("origin %q is not one of dodo, sendowl, system_notifications", o)
		}
		if seen[o] {
			return zero, fmt.Errorf("origin %q is listed twice", o)
		}
		seen[o] = true
	}
	schema, err := buildSchema(ft.Schema, defs)
	if err != nil {
		return zero, fmt.Errorf("schema: %w", err)
	}
	example, err := compactObject(ft.Example)
	if err != nil {
		return zero, fmt.Errorf("example: %w", err)
	}
	return herald.EventType{
		Name:        ft.Name,
		Group:       group,
		Title:       ft.Title,
		Description: ft.Description,
		Schema:      schema,
		Example:     example,
		Origins:     ft.Origins,
	}, nil
}

func loadDefs(fsys fs.FS) (map[string]json.RawMessage, error) {
	var doc struct {
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if err := decodeStrict(fsys, "data/defs.json", &doc); err != nil {
		return nil, err
	}
	return doc.Defs, nil
}

func decodeStrict(fsys fs.FS, file string, v any) error {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("catalog: %s: %w", file, err)
	}
	return nil
}

// buildSchema turns a type's schema spec (a defs name or a schema object)
// into a self-contained schema carrying "$schema" and the "$defs" it uses.
func buildSchema(spec json.RawMessage, defs map[string]json.RawMessage) (json.RawMessage, error) {
	spec = bytes.TrimSpace(spec)
	if len(spec) == 0 || bytes.Equal(spec, []byte("null")) {
		return nil, errors.New("missing")
	}
	root := spec
	if spec[0] == '"' {
		var name string
		if err := json.Unmarshal(spec, &name); err != nil {
			return nil, err
		}
		def, ok := defs[name]
		if !ok {
			return nil, fmt.Errorf("no shared schema %q in data/defs.json", name)
		}
		root = def
	}
	body, err := compactObject(root)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	for _, k := range []string{"$schema", "$defs", "$id"} {
		if _, ok := top[k]; ok {
			return nil, fmt.Errorf("must not set %q: Load adds what is needed", k)
		}
	}
	used, err := usedDefs(root, defs)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"$schema":"` + schemaDialect + `"`)
	if inner := body[1 : len(body)-1]; len(inner) > 0 {
		b.WriteByte(',')
		b.Write(inner)
	}
	if len(used) > 0 {
		sub := make(map[string]json.RawMessage, len(used))
		for name := range used {
			c, err := compactObject(defs[name])
			if err != nil {
				return nil, fmt.Errorf("shared schema %q: %w", name, err)
			}
			sub[name] = c
		}
		d, err := json.Marshal(sub) // keys sorted: stable output
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"$defs":`)
		b.Write(d)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// usedDefs returns the names of the shared schemas root refers to, directly
// or through other shared schemas.
func usedDefs(root json.RawMessage, defs map[string]json.RawMessage) (map[string]bool, error) {
	used := map[string]bool{}
	queue := []json.RawMessage{root}
	for len(queue) > 0 {
		var v any
		if err := json.Unmarshal(queue[0], &v); err != nil {
			return nil, err
		}
		queue = queue[1:]
		var missing error
		walkRefs(v, func(ref string) {
			rest, ok := strings.CutPrefix(ref, defsRef)
			if !ok {
				return
			}
			name, _, _ := strings.Cut(rest, "/")
			if used[name] {
				return
			}
			def, ok := defs[name]
			if !ok {
				missing = fmt.Errorf("$ref %q: no shared schema %q in data/defs.json", ref, name)
				return
			}
			used[name] = true
			queue = append(queue, def)
		})
		if missing != nil {
			return nil, missing
		}
	}
	return used, nil
}

// walkRefs calls f with every "$ref" string in v.
func walkRefs(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				f(s)
				continue
			}
			walkRefs(x, f)
		}
	case []any:
		for _, x := range v {
			walkRefs(x, f)
		}
	}
}

// compactObject checks that raw is one JSON object and returns it compacted.
func compactObject(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errors.New("must be a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
