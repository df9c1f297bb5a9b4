package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/heraldhq/herald"
)

// The catalog is the reference a developer reads while writing the
// receiving end: every built-in type with its schema and example, and how
// to check that a request really comes from Herald.

func (s *Server) routesCatalog(mux *http.ServeMux) {
	mux.Handle("GET /catalog", s.authed(s.catalogPage))
}

// catalogType is a built-in type with its top-level data fields read out of
// the schema, so a reader sees at a glance which ones can be null.
type catalogType struct {
	herald.EventType
	Fields   []catalogField
	Nullable []string
}

type catalogField struct {
	Name, Type, Description string
	Required, Nullable      bool
}

func (s *Server) catalogPage(w http.ResponseWriter, r *http.Request, sess *session) {
	var lst list[herald.EventType]
	if err := s.call(r, sess, http.MethodGet, "/v1/event-types", nil, &lst); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	types := make([]catalogType, len(lst.Data))
	for i, et := range lst.Data {
		types[i] = catalogType{EventType: et}
		types[i].Fields = catalogFields(et.Schema)
		for _, f := range types[i].Fields {
			if f.Nullable {
				types[i].Nullable = append(types[i].Nullable, f.Name)
			}
		}
	}
	groups := notifGroupTypes(types, func(t catalogType) string { return t.Group }, func(t catalogType) string { return t.Name })
	p := &page{Title: "Event catalog", Nav: "catalog", Session: sess, Data: catalogData{Groups: groups, GoExample: catalogGoExample}}
	if !sess.Operator {
		p.TenantID = sess.Tenant
	}
	s.render(w, r, http.StatusOK, "catalog", p)
}

type catalogData struct {
	Groups    []notifGroupOf[catalogType]
	GoExample string
}

// schemaNode is the part of a JSON Schema the field list needs.
type schemaNode struct {
	Type        json.RawMessage       `json:"type"`
	Ref         string                `json:"$ref"`
	Const       json.RawMessage       `json:"const"`
	AnyOf       []schemaNode          `json:"anyOf"`
	OneOf       []schemaNode          `json:"oneOf"`
	Description string                `json:"description"`
	Required    []string              `json:"required"`
	Properties  json.RawMessage       `json:"properties"`
	Defs        map[string]schemaNode `json:"$defs"`
}

// types lists the node's JSON types ("string", "null", …), following a
// local $ref and anyOf/oneOf, so a reference to a nullable shared piece
// counts as nullable too.
func (n schemaNode) types(defs map[string]schemaNode, depth int) []string {
	var out []string
	var one string
	var many []string
	switch {
	case json.Unmarshal(n.Type, &one) == nil && one != "":
		out = append(out, one)
	case json.Unmarshal(n.Type, &many) == nil:
		out = append(out, many...)
	}
	if depth < 8 {
		if name, ok := strings.CutPrefix(n.Ref, "#/$defs/"); ok {
			if d, ok := defs[name]; ok {
				out = append(out, d.types(defs, depth+1)...)
			}
		}
		for _, sub := range append(slices.Clone(n.AnyOf), n.OneOf...) {
			out = append(out, sub.types(defs, depth+1)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// catalogFields reads the top-level properties of a schema in the order
// they are written; a schema it cannot read gives no fields.
func catalogFields(raw json.RawMessage) []catalogField {
	var root schemaNode
	if len(raw) == 0 || json.Unmarshal(raw, &root) != nil || len(root.Properties) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(root.Properties))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var fields []catalogField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fields
		}
		name, _ := tok.(string)
		var prop schemaNode
		if err := dec.Decode(&prop); err != nil {
			return fields
		}
		ts := prop.types(root.Defs, 0)
		typ := strings.Join(slices.DeleteFunc(slices.Clone(ts), func(t string) bool { return t == "null" }), " or ")
		switch ref, isRef := strings.CutPrefix(prop.Ref, "#/$defs/"); {
		case isRef:
			typ = ref + " (" + typ + ")"
		case len(prop.Const) > 0:
			typ = "always " + string(prop.Const)
		case typ == "":
			typ = "any"
		}
		desc := prop.Description
		if desc == "" && prop.Ref != "" {
			if d, ok := root.Defs[strings.TrimPrefix(prop.Ref, "#/$defs/")]; ok {
				desc = d.Description
			}
		}
		fields = append(fields, catalogField{
			Name: name, Type: typ, Description: desc,
			Required: slices.Contains(root.Required, name),
			Nullable: slices.Contains(ts, "null"),
		})
	}
	return fields
}

// catalogGoExample is the receiving end in Go, with Herald's own package.
const catalogGoExample = `import "github.com/heraldhq/herald/webhooks"

// Once, at start-up. While a secret is being rotated pass both:
// webhooks.NewVerifier(oldSecret, newSecret).
verifier, err := webhooks.NewVerifier(os.Getenv("WEBHOOK_SECRET")) // "whsec_…"
if err != nil {
	log.Fatal(err)
}

http.HandleFunc("POST /hooks/herald", func(w http.ResponseWriter, r *http.Request) {
	// Verify the raw bytes as received, before decoding the JSON.
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if err := verifier.Verify(body, r.Header); err != nil {
		// errors.Is(err, webhooks.ErrTimestampTooOld), webhooks.ErrNoMatchingSignature, …
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	// Deduplicate on r.Header.Get(webhooks.HeaderID), then handle the event.
	w.WriteHeader(http.StatusNoContent)
})`
