package catalog

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/schema"
)

// seedEvents is every event of the seed pages, by origin, under the name
// the catalog gives it. Dodo's names are Dodo's own.
var seedEvents = map[string][]string{
	herald.OriginDodo: {
		"payment.succeeded", "payment.failed", "payment.processing", "payment.cancelled",
		"refund.succeeded", "refund.failed",
		"dispute.opened", "dispute.expired", "dispute.accepted", "dispute.cancelled",
		"dispute.challenged", "dispute.won", "dispute.lost",
		"subscription.active", "subscription.updated", "subscription.on_hold", "subscription.renewed",
		"subscription.plan_changed", "subscription.cancelled", "subscription.failed", "subscription.expired",
		"license_key.created",
		"credit.added", "credit.deducted", "credit.expired", "credit.rolled_over",
		"credit.rollover_forfeited", "credit.overage_charged", "credit.manual_adjustment", "credit.balance_low",
	},
	herald.OriginSendOwl: {
		"order.new_payment",             // New Payment
		"order.completed",               // Order Completed
		"order.free_issued",             // Free Order Issued
		"order.in_dispute",              // In Dispute
		"order.charged_back",            // Order Charged Back
		"order.failed",                  // Order Failed
		"order.imported",                // Order Imported
		"order.refunded",                // Refund Issued
		"order.fraud_review",            // Fraud Review
		"order.subscription_active",     // Subscription Active
		"order.subscription_cancelled",  // Subscription Cancelled
		"order.subscription_cancelling", // Subscription Cancelling
		"order.subscription_complete",   // Subscription Complete
		"order.subscription_setup",      // Subscription Setup
	},
	herald.OriginSystemNotifications: {
		"order.completed",                 // Order completed
		"contact.created",                 // Contact created
		"order.tracking_updated",          // Shipping tracking info updated
		"order.product_conflict",          // Product conflicts
		"transaction.declined",            // Transaction declined
		"transaction.refunded",            // Refund applied
		"customer.subscription_cancelled", // Subscription canceled
		"customer.created",                // Customer created
		"transaction.approved",            // Approved transaction
		"survey.completed",                // Survey completed
	},
}

func mustLoad(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestSeedEventsPresent(t *testing.T) {
	c := mustLoad(t)
	want := map[string][]string{} // name → origins
	for origin, names := range seedEvents {
		for _, n := range names {
			want[n] = append(want[n], origin)
		}
	}
	for name, origins := range want {
		et, ok := c.Lookup(name)
		if !ok {
			t.Errorf("seed event %q missing", name)
			continue
		}
		got := slices.Clone(et.Origins)
		sort.Strings(got)
		sort.Strings(origins)
		if !slices.Equal(got, origins) {
			t.Errorf("%s: origins %v, want %v", name, et.Origins, origins)
		}
	}
	// The catalog holds seed events only; anything else is a custom type.
	for _, et := range c.All() {
		if _, ok := want[et.Name]; !ok {
			t.Errorf("%s is not a seed event; remove it or add it to seedEvents", et.Name)
		}
	}
	if len(seedEvents[herald.OriginDodo]) != 30 || len(seedEvents[herald.OriginSendOwl]) != 14 ||
		len(seedEvents[herald.OriginSystemNotifications]) != 10 {
		t.Error("seedEvents lost an entry: want 30 Dodo, 14 SendOwl and 10 System Notifications events")
	}
}

func TestNamesAndMetadata(t *testing.T) {
	c := mustLoad(t)
	allowed := []string{herald.OriginDodo, herald.OriginSendOwl, herald.OriginSystemNotifications}
	seen := map[string]bool{}
	for _, et := range c.All() {
		if seen[et.Name] {
			t.Errorf("%s listed twice", et.Name)
		}
		seen[et.Name] = true
		if !herald.ValidEventTypeName(et.Name) {
			t.Errorf("%q is not a valid event type name", et.Name)
		}
		if et.Group != herald.GroupOf(et.Name) {
			t.Errorf("%s: group %q, want %q", et.Name, et.Group, herald.GroupOf(et.Name))
		}
		if strings.TrimSpace(et.Title) == "" || strings.TrimSpace(et.Description) == "" {
			t.Errorf("%s: title or description missing", et.Name)
		}
		if !strings.HasSuffix(et.Description, ".") {
			t.Errorf("%s: description should be a sentence: %q", et.Name, et.Description)
		}
		if len(et.Origins) == 0 {
			t.Errorf("%s: no origins", et.Name)
		}
		for _, o := range et.Origins {
			if !slices.Contains(allowed, o) {
				t.Errorf("%s: origin %q is not a built-in origin", et.Name, o)
			}
		}
		if got, ok := c.Lookup(et.Name); !ok || got.Name != et.Name {
			t.Errorf("Lookup(%q) = %v, %v", et.Name, got.Name, ok)
		}
	}
	if _, ok := c.Lookup("payment.unknown"); ok {
		t.Error("Lookup found a type that does not exist")
	}
}

func TestOrderAndGroups(t *testing.T) {
	c := mustLoad(t)
	all := c.All()
	if !sort.SliceIsSorted(all, func(i, j int) bool {
		if all[i].Group != all[j].Group {
			return all[i].Group < all[j].Group
		}
		return all[i].Name < all[j].Name
	}) {
		t.Error("All is not sorted by group, then name")
	}
	var groups []string
	for _, et := range all {
		if !slices.Contains(groups, et.Group) {
			groups = append(groups, et.Group)
		}
	}
	sort.Strings(groups)
	if !slices.Equal(c.Groups(), groups) {
		t.Errorf("Groups() = %v, want %v", c.Groups(), groups)
	}
}

func TestSchemasCompileAndExamplesValidate(t *testing.T) {
	for _, et := range mustLoad(t).All() {
		v, err := schema.Compile(et.Schema)
		if err != nil {
			t.Errorf("%s: schema does not compile: %v", et.Name, err)
			continue
		}
		if errs := v.Validate(et.Example); errs != nil {
			t.Errorf("%s: example does not match its schema: %v", et.Name, errs)
		}
		// The schema must reject data that lacks what it requires.
		if errs := v.Validate(json.RawMessage(`{}`)); len(errs) == 0 {
			t.Errorf("%s: schema accepts {}", et.Name)
		}
		var s struct {
			Schema string `json:"$schema"`
		}
		if err := json.Unmarshal(et.Schema, &s); err != nil || s.Schema != schemaDialect {
			t.Errorf("%s: $schema = %q, want %q", et.Name, s.Schema, schemaDialect)
		}
	}
}

// TestSchemasDescribeEveryProperty keeps the schemas useful as documentation.
func TestSchemasDescribeEveryProperty(t *testing.T) {
	for _, et := range mustLoad(t).All() {
		var doc any
		if err := json.Unmarshal(et.Schema, &doc); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if props, ok := v["properties"].(map[string]any); ok {
					for name, p := range props {
						pm, _ := p.(map[string]any)
						if d, _ := pm["description"].(string); d == "" {
							t.Errorf("%s: property %s.%s has no description", et.Name, path, name)
						}
					}
				}
				for k, x := range v {
					walk(path+"/"+k, x)
				}
			case []any:
				for _, x := range v {
					walk(path, x)
				}
			}
		}
		walk("", doc)
	}
}

// TestExamplesFitTheirEvent checks that each example tells the story of its
// own event, not a neighbour's.
func TestExamplesFitTheirEvent(t *testing.T) {
	c := mustLoad(t)
	field := func(name, path string) any {
		et, ok := c.Lookup(name)
		if !ok {
			t.Fatalf("%s missing", name)
		}
		var v any
		if err := json.Unmarshal(et.Example, &v); err != nil {
			t.Fatal(err)
		}
		for _, k := range strings.Split(path, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	expect := func(name, path string, want any) {
		t.Helper()
		if got := field(name, path); got != want {
			t.Errorf("%s: example %s = %v, want %v", name, path, got, want)
		}
	}
	payloadTypes := map[string]string{
		"payment": "Payment", "refund": "Refund", "dispute": "Dispute", "subscription": "Subscription",
		"license_key": "LicenseKey", "credit": "CreditLedgerEntry",
	}
	for _, et := range c.All() {
		if !slices.Contains(et.Origins, herald.OriginDodo) {
			continue
		}
		want := payloadTypes[et.Group]
		if et.Name == "credit.balance_low" {
			want = "CreditBalanceLow"
		}
		expect(et.Name, "payload_type", want)
	}
	for _, s := range []string{"succeeded", "failed", "processing", "cancelled"} {
		expect("payment."+s, "status", s)
	}
	if field("payment.failed", "error_code") == nil || field("payment.failed", "error_message") == nil {
		t.Error("payment.failed: example needs error_code and error_message")
	}
	expect("refund.succeeded", "status", "succeeded")
	expect("refund.failed", "status", "failed")
	for _, s := range []string{"opened", "expired", "accepted", "cancelled", "challenged", "won", "lost"} {
		expect("dispute."+s, "dispute_status", "dispute_"+s)
	}
	for name, status := range map[string]string{
		"active": "active", "updated": "active", "on_hold": "on_hold", "renewed": "active",
		"plan_changed": "active", "cancelled": "cancelled", "failed": "failed", "expired": "expired",
	} {
		expect("subscription."+name, "status", status)
	}
	for name, tt := range map[string]string{
		"added": "credit_added", "deducted": "credit_deducted", "expired": "credit_expired",
		"rolled_over": "credit_rolled_over", "rollover_forfeited": "rollover_forfeited",
		"overage_charged": "overage_charged", "manual_adjustment": "manual_adjustment",
	} {
		expect("credit."+name, "transaction_type", tt)
	}
	for name, state := range map[string]string{
		"completed": "complete", "free_issued": "free", "in_dispute": "in_dispute", "charged_back": "chargeback",
		"failed": "failed", "imported": "imported", "refunded": "refunded", "fraud_review": "fraud_review",
		"subscription_setup": "subscription_setup", "subscription_active": "subscription_active",
		"subscription_cancelling": "subscription_cancelling", "subscription_cancelled": "subscription_cancelled",
		"subscription_complete": "subscription_complete",
	} {
		expect("order."+name, "order.state", state)
	}
	expect("transaction.approved", "transaction.status", "approved")
	expect("transaction.declined", "transaction.status", "declined")
	expect("transaction.refunded", "transaction.type", "refund")
	expect("customer.subscription_cancelled", "subscription.status", "cancelled")
}

// TestMergedTypesShareOneShape: a type listing several origins has one
// schema, so an example in one origin's style must satisfy it.
func TestMergedTypesShareOneShape(t *testing.T) {
	c := mustLoad(t)
	et, _ := c.Lookup("order.completed")
	v, err := schema.Compile(et.Schema)
	if err != nil {
		t.Fatal(err)
	}
	funnelOrder := `{"order":{"id":"100482","state":"complete","buyer_name":"Maria Lopez",
		"buyer_email":"maria.lopez@example.com","buyer_phone":"+13055550142","settled_currency":"USD",
		"settled_gross":"47.00","funnel":{"id":"fnl_58213","name":"Keto","step":null},"shipping_address":null}}`
	if errs := v.Validate(json.RawMessage(funnelOrder)); errs != nil {
		t.Errorf("a System Notifications order does not fit order.completed: %v", errs)
	}
	if errs := v.Validate(json.RawMessage(`{"order":{"id":"1","state":"complete"}}`)); len(errs) != 1 ||
		errs[0].Field != "data.order.buyer_email" {
		t.Errorf("missing buyer_email: got %v", errs)
	}
}

func TestDocsListEveryType(t *testing.T) {
	b, err := os.ReadFile("../../docs/catalog.md")
	if err != nil {
		t.Fatalf("docs/catalog.md: %v", err)
	}
	doc := string(b)
	for _, et := range mustLoad(t).All() {
		if !strings.Contains(doc, "`"+et.Name+"`") {
			t.Errorf("docs/catalog.md does not mention `%s`", et.Name)
		}
	}
}

func TestBuildSchemaErrors(t *testing.T) {
	defs := map[string]json.RawMessage{
		"a": json.RawMessage(`{"type":"object","properties":{"b":{"$ref":"#/$defs/b"}}}`),
		"b": json.RawMessage(`{"type":"string"}`),
		"c": json.RawMessage(`{"$ref":"#/$defs/nope"}`),
	}
	got, err := buildSchema(json.RawMessage(`"a"`), defs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"$schema":"` + schemaDialect + `","type":"object","properties":{"b":{"$ref":"#/$defs/b"}},"$defs":{"b":{"type":"string"}}}`
	if string(got) != want {
		t.Errorf("buildSchema(a)\n got %s\nwant %s", got, want)
	}
	for _, spec := range []string{``, `null`, `"missing"`, `"c"`, `[1]`, `{"$defs":{}}`, `{"$schema":"x"}`} {
		if _, err := buildSchema(json.RawMessage(spec), defs); err == nil {
			t.Errorf("buildSchema(%s) succeeded, want an error", spec)
		}
	}
}

func TestLoadRejectsBadData(t *testing.T) {
	defs := `{"$defs":{"thing":{"type":"object","required":["id"],"properties":{"id":{"type":"string","description":"Id."}}}}}`
	typ := func(name, extra string) string {
		return `{"name":"` + name + `","title":"T","description":"D.","origins":["dodo"],"schema":"thing","example":{"id":"1"}` + extra + `}`
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"duplicate", map[string]string{"a.json": `{"types":[` + typ("a.one", "") + `,` + typ("a.one", "") + `]}`}, "defined twice"},
		{"invalid name", map[string]string{"a.json": `{"types":[` + typ("a.One", "") + `]}`}, "group.action"},
		{"no action", map[string]string{"a.json": `{"types":[` + typ("a", "") + `]}`}, "group.action"},
		{"wrong file", map[string]string{"a.json": `{"types":[` + typ("b.one", "") + `]}`}, "data/types/b.json"},
		{"custom origin", map[string]string{"a.json": `{"types":[` + strings.Replace(typ("a.one", ""), `"dodo"`, `"custom"`, 1) + `]}`}, "origin"},
		{"no title", map[string]string{"a.json": `{"types":[` + strings.Replace(typ("a.one", ""), `"T"`, `""`, 1) + `]}`}, "title"},
		{"unknown def", map[string]string{"a.json": `{"types":[` + strings.Replace(typ("a.one", ""), `"thing"`, `"nothing"`, 1) + `]}`}, "nothing"},
		{"unknown field", map[string]string{"a.json": `{"types":[` + typ("a.one", `,"titel":"x"`) + `]}`}, "titel"},
		{"no example", map[string]string{"a.json": `{"types":[` + strings.Replace(typ("a.one", ""), `{"id":"1"}`, `null`, 1) + `]}`}, "example"},
		{"empty", map[string]string{}, "no event types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"data/defs.json": {Data: []byte(defs)}}
			for name, body := range tt.files {
				fsys["data/types/"+name] = &fstest.MapFile{Data: []byte(body)}
			}
			if len(tt.files) == 0 {
				fsys["data/types/README"] = &fstest.MapFile{Data: []byte("x")}
			}
			_, err := load(fsys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("load: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	// The same data without the fault loads.
	fsys := fstest.MapFS{"data/defs.json": {Data: []byte(defs)},
		"data/types/a.json": {Data: []byte(`{"types":[` + typ("a.one", "") + `]}`)}}
	c, err := load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if et, ok := c.Lookup("a.one"); !ok || et.Group != "a" || !strings.Contains(string(et.Schema), `"$schema"`) {
		t.Errorf("Lookup(a.one) = %+v, %v", et, ok)
	}
}
