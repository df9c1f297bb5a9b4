package action

import (
	"math"
	"strconv"
	"strings"
)

// Summary is a readable one-line message for an event of type typ with
// data: "Order #123 completed — 49.00 USD — jane@example.com". It reads the
// fields the catalog's payloads have in common (an id or number of the
// event's main object, an amount with its currency, the customer's email)
// and leaves out whatever an event does not carry.
func Summary(typ string, data map[string]any) string {
	group, act, _ := strings.Cut(typ, ".")
	head := capitalize(words(group))
	// customer.subscription_cancelled is about data.subscription: name it.
	if sub, rest, ok := strings.Cut(act, "_"); ok && obj(data, sub) != nil {
		head += " " + sub
		group, act = sub, rest
	}
	if ref := reference(group, data); ref != "" {
		head += " #" + ref
	}
	if act != "" {
		head += " " + words(act)
	}
	parts := []string{head}
	if a := amountText(group, data); a != "" {
		parts = append(parts, a)
	}
	c := Customer(data)
	switch {
	case c.Email != "":
		parts = append(parts, c.Email)
	case c.Name != "":
		parts = append(parts, c.Name)
	case c.ID != "":
		parts = append(parts, "customer "+c.ID)
	}
	return strings.Join(parts, " — ")
}

func words(s string) string { return strings.ReplaceAll(s, "_", " ") }

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// reference finds the id or number of the event's main object: the object
// named like the group (data.order.id), a "<group>_id" field (Dodo's
// payment_id), or the data's own id.
func reference(group string, data map[string]any) string {
	if o := obj(data, group); o != nil {
		if s := str(o, "number", "id"); s != "" {
			return s
		}
	}
	return str(data, group+"_id", "number", "id")
}

// amountSources are the amount fields of the catalog's payloads, with the
// field that holds their currency and whether they count minor units.
var amountSources = []struct {
	amount, currency string
	minor            bool
}{
	{"total_amount", "currency", true},             // Dodo payment
	{"amount", "currency", true},                   // Dodo refund and dispute, funnel transaction and subscription
	{"recurring_pre_tax_amount", "currency", true}, // Dodo subscription
	{"settled_gross", "settled_currency", false},   // SendOwl order: "18.00"
}

// amountText is "49.00 USD", "100 credits" or "".
func amountText(group string, data map[string]any) string {
	if group == "credit" {
		if n := str(data, "amount"); n != "" {
			return n + " credits"
		}
		if n := str(data, "available_balance"); n != "" {
			return n + " credits left"
		}
		return ""
	}
	places := []map[string]any{obj(data, group), data, obj(data, "order"), obj(data, "transaction"), obj(data, "subscription")}
	for _, o := range places {
		if o == nil {
			continue
		}
		for _, src := range amountSources {
			cur := str(o, src.currency)
			if cur == "" {
				continue
			}
			if m, ok := amountOf(o[src.amount], src.minor); ok {
				return m.format(cur)
			}
		}
	}
	return ""
}

// amount is a sum of money: minor units, or major units as written.
type amount struct {
	minor    int64
	major    string
	hasMinor bool
}

// amountOf reads a JSON number or string. Integers count minor units when
// minor is set; a string with a decimal point is always major units.
func amountOf(v any, minor bool) (amount, bool) {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 && minor {
			return amount{minor: int64(x), hasMinor: true}, true
		}
		return amount{major: strconv.FormatFloat(x, 'f', -1, 64)}, true
	case int:
		if minor {
			return amount{minor: int64(x), hasMinor: true}, true
		}
		return amount{major: strconv.Itoa(x)}, true
	case string:
		x = strings.TrimSpace(x)
		if x == "" {
			return amount{}, false
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil && minor {
			return amount{minor: n, hasMinor: true}, true
		}
		if _, err := strconv.ParseFloat(x, 64); err != nil {
			return amount{}, false
		}
		return amount{major: x}, true
	}
	return amount{}, false
}

func (m amount) format(currency string) string {
	currency = strings.ToUpper(currency)
	if !m.hasMinor {
		return strings.TrimSpace(m.major + " " + currency)
	}
	exp := currencyExponent(currency)
	n := m.minor
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	s := strconv.FormatInt(n, 10)
	if exp > 0 {
		for len(s) <= exp {
			s = "0" + s
		}
		s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	return strings.TrimSpace(sign + s + " " + currency)
}

// currencyExponent is the number of minor-unit digits of an ISO 4217
// currency: 2 unless listed.
func currencyExponent(c string) int {
	switch c {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// CustomerInfo is who an event is about, as far as its payload says.
type CustomerInfo struct {
	ID, Name, FirstName, LastName, Email, Phone string
}

// Map is the value customer() gives expressions.
func (c CustomerInfo) Map() map[string]any {
	return map[string]any{"id": c.ID, "name": c.Name, "first_name": c.FirstName, "last_name": c.LastName, "email": c.Email, "phone": c.Phone}
}

// Customer finds the customer in the usual places of the catalog's
// payloads: data.customer (funnel platforms and Dodo), data.contact, an
// order's buyer_* fields, then top-level customer_id / email. Missing parts
// are empty; a name alone is split into first and last name.
func Customer(data map[string]any) CustomerInfo {
	cust, contact, order := obj(data, "customer"), obj(data, "contact"), obj(data, "order")
	if order == nil {
		order = obj(obj(data, "subscription"), "order")
	}
	var addr map[string]any
	if cust != nil {
		addr = obj(cust, "address")
	}
	c := CustomerInfo{
		ID:        first(str(cust, "id", "customer_id"), str(contact, "id"), str(order, "contact_id"), str(data, "customer_id")),
		FirstName: first(str(cust, "first_name"), str(contact, "first_name")),
		LastName:  first(str(cust, "last_name"), str(contact, "last_name")),
		Email:     first(str(cust, "email"), str(contact, "email"), str(order, "buyer_email"), str(data, "email")),
		Phone: first(str(cust, "phone"), str(contact, "phone"), str(order, "buyer_phone"), str(addr, "phone"),
			str(obj(order, "shipping_address"), "phone")),
	}
	c.Name = first(str(cust, "name"), join(c.FirstName, c.LastName), str(contact, "name"), str(order, "buyer_name"), str(addr, "name"))
	if c.FirstName == "" && c.LastName == "" && c.Name != "" {
		c.FirstName, c.LastName, _ = strings.Cut(c.Name, " ")
		c.LastName = strings.TrimSpace(c.LastName)
	}
	return c
}

func join(a, b string) string { return strings.TrimSpace(a + " " + b) }

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// obj is m[key] when it is an object.
func obj(m map[string]any, key string) map[string]any {
	if m == nil {
		return nil
	}
	o, _ := m[key].(map[string]any)
	return o
}

// str is the first of m's keys holding a string or a number, as text.
func str(m map[string]any, keys ...string) string {
	if m == nil {
		return ""
	}
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			if s := strings.TrimSpace(v); s != "" {
				return s
			}
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return ""
}
