package schema

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
)

// The validating library has no work limit, and a small schema can make it
// do exponential work: anyOf branches that all lead to the same subschema,
// or a recursive "$ref" reached twice per level, double the work at every
// step. Schemas come from tenants, so before the library runs, Validate
// walks the schema and the data together the way the library would, only
// counting, and refuses data whose check would cost more than MaxCost
// schema applications. The count is an upper bound: every applicator is
// assumed to apply (if, then and else all; every pattern to every member).

// MaxCost bounds the schema applications one Validate may make.
const MaxCost = 200_000

// costNode is one subschema as the validator walks it.
type costNode struct {
	inPlace  []*costNode          // applied to the same value: allOf, anyOf, oneOf, not, if/then/else, $ref, …
	props    map[string]*costNode // "properties": applied to the member of that name
	members  []*costNode          // applied to every member value: patternProperties, additionalProperties, …
	names    []*costNode          // "propertyNames": applied to every member name
	items    []*costNode          // applied to every item: items, prefixItems, contains, …
	unique   bool                 // "uniqueItems": compares items pairwise
	enumSize int                  // "enum": compared with each value
}

// costGraph builds costNodes for a schema document, resolving local
// references.
type costGraph struct {
	root    any
	nodes   map[uintptr]*costNode
	anchors map[string][]map[string]any
	leaf    *costNode
	err     error
}

// buildCost returns the root costNode of doc, or an error when doc uses a
// reference it cannot follow (a schema Herald accepts only refers inside
// itself).
func buildCost(doc any) (*costNode, error) {
	g := &costGraph{root: doc, nodes: map[uintptr]*costNode{}, anchors: map[string][]map[string]any{}, leaf: &costNode{}}
	g.collectAnchors(doc)
	n := g.node(doc)
	return n, g.err
}

func (g *costGraph) collectAnchors(v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range []string{"$anchor", "$dynamicAnchor"} {
			if a, ok := x[k].(string); ok {
				g.anchors[a] = append(g.anchors[a], x)
			}
		}
		for _, c := range x {
			g.collectAnchors(c)
		}
	case []any:
		for _, c := range x {
			g.collectAnchors(c)
		}
	}
}

func (g *costGraph) node(v any) *costNode {
	m, ok := v.(map[string]any)
	if !ok {
		return g.leaf // true, false (or invalid, which the compiler refused)
	}
	key := reflect.ValueOf(m).Pointer()
	if n := g.nodes[key]; n != nil {
		return n
	}
	n := &costNode{}
	g.nodes[key] = n // before the children: references may cycle back
	one := func(k string) []*costNode {
		if c, ok := m[k]; ok {
			return []*costNode{g.node(c)}
		}
		return nil
	}
	list := func(k string) []*costNode {
		var out []*costNode
		switch c := m[k].(type) {
		case []any:
			for _, s := range c {
				out = append(out, g.node(s))
			}
		case map[string]any, bool:
			out = append(out, g.node(c))
		}
		return out
	}
	values := func(k string) []*costNode {
		var out []*costNode
		if c, ok := m[k].(map[string]any); ok {
			for _, s := range c {
				if _, isList := s.([]any); !isList { // draft-07 "dependencies" may list names
					out = append(out, g.node(s))
				}
			}
		}
		return out
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		n.inPlace = append(n.inPlace, list(k)...)
	}
	for _, k := range []string{"not", "if", "then", "else"} {
		n.inPlace = append(n.inPlace, one(k)...)
	}
	n.inPlace = append(n.inPlace, values("dependentSchemas")...)
	n.inPlace = append(n.inPlace, values("dependencies")...)
	for _, k := range []string{"$ref", "$dynamicRef", "$recursiveRef"} {
		if ref, ok := m[k].(string); ok {
			n.inPlace = append(n.inPlace, g.resolve(ref)...)
		}
	}
	if props, ok := m["properties"].(map[string]any); ok {
		n.props = make(map[string]*costNode, len(props))
		for name, s := range props {
			n.props[name] = g.node(s)
		}
	}
	n.members = append(values("patternProperties"), one("additionalProperties")...)
	n.members = append(n.members, one("unevaluatedProperties")...)
	n.names = one("propertyNames")
	n.items = list("items")
	for _, k := range []string{"prefixItems"} {
		n.items = append(n.items, list(k)...)
	}
	for _, k := range []string{"additionalItems", "unevaluatedItems", "contains"} {
		n.items = append(n.items, one(k)...)
	}
	n.unique, _ = m["uniqueItems"].(bool)
	if e, ok := m["enum"].([]any); ok {
		n.enumSize = len(e)
	}
	return n
}

// resolve finds the subschemas a local reference may lead to.
func (g *costGraph) resolve(ref string) []*costNode {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		if g.err == nil {
			g.err = fmt.Errorf("schema reference %q is not local; refer inside the schema, as \"#/$defs/…\"", ref)
		}
		return nil
	}
	if frag == "" {
		return []*costNode{g.node(g.root)}
	}
	if !strings.HasPrefix(frag, "/") { // an anchor; a dynamic one may resolve to any of its name
		var out []*costNode
		for _, m := range g.anchors[frag] {
			out = append(out, g.node(m))
		}
		return out
	}
	cur := g.root
	for _, tok := range strings.Split(frag[1:], "/") {
		if t, err := url.PathUnescape(tok); err == nil {
			tok = t
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i := -1
			if _, err := fmt.Sscan(tok, &i); err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return []*costNode{g.node(cur)}
}

// affordable reports whether checking doc against n costs at most budget
// schema applications.
func affordable(n *costNode, doc any, budget int) bool {
	c := coster{budget: budget}
	c.walk(n, doc, nil)
	return c.budget >= 0
}

type coster struct{ budget int }

// walk counts the applications of n to v; chain holds the subschemas
// already applied in place to v, where the library stops with a cycle
// error.
func (c *coster) walk(n *costNode, v any, chain []*costNode) {
	c.budget -= 1 + n.enumSize
	if c.budget < 0 {
		return
	}
	for _, p := range chain {
		if p == n {
			return
		}
	}
	chain = append(chain, n)
	for _, s := range n.inPlace {
		if c.walk(s, v, chain); c.budget < 0 {
			return
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for name, val := range x {
			if s := n.props[name]; s != nil {
				c.walk(s, val, nil)
			}
			for _, s := range n.members {
				c.walk(s, val, nil)
			}
			for _, s := range n.names {
				c.walk(s, name, nil)
			}
			if c.budget < 0 {
				return
			}
		}
	case []any:
		if n.unique {
			c.budget -= len(x) * (len(x) - 1) / 2
		}
		for _, item := range x {
			for _, s := range n.items {
				c.walk(s, item, nil)
			}
			if c.budget < 0 {
				return
			}
		}
	}
}
