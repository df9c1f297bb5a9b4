// Package target decides which URLs Herald may deliver to. Merchants supply
// the URLs, so without a check a channel could make the server reach its own
// loopback interface, the private network or a cloud metadata service
// (server-side request forgery).
//
// Only http and https URLs on globally routable addresses are accepted; any
// port is fine. The operator may allow other addresses with a list of CIDRs
// (--allowed-target-cidrs). A URL is checked twice: by [Guard.CheckURL] when
// it is saved, for a clear error early, and by [Guard.Control] at connect
// time, on the IP address actually dialled, which also covers DNS rebinding
// and names that resolve differently later.
//
// The connect-time check only sees the address the dialer connects to, so the
// http.Transport using [Guard.Dialer] must not use a proxy (Proxy: nil), and
// the client must not follow redirects.
package target

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"code.dny.dev/ssrf"
)

// FlagName is the command-line flag that lists allowed CIDRs; error messages
// name it as the fix.
const FlagName = "--allowed-target-cidrs"

// ErrRefused is matched by every *Error: errors.Is(err, ErrRefused) reports
// whether a target was refused by this package.
var ErrRefused = errors.New("target refused")

// Error says which target was refused, why, and how to fix it.
type Error struct {
	Target string     // the URL, host or address, as it appears in the message
	Addr   netip.Addr // the refused IP address, if the refusal is about one
	Reason string     // why, phrased to follow Target: "is a loopback address"
	Hint   string     // what to do about it; may be empty
	Err    error      // the underlying cause, such as a DNS error; may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("target ")
	b.WriteString(e.Target)
	b.WriteByte(' ')
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *Error) Is(target error) bool { return target == ErrRefused }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// ParseCIDRs parses a list of prefixes separated by commas and/or white
// space, such as "127.0.0.0/8, ::1/128". A bare address stands for itself
// (a /32 or /128). An empty list gives nil.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(entries) == 0 {
		return nil, nil
	}
	prefixes := make([]netip.Prefix, 0, len(entries))
	for _, e := range entries {
		if !strings.Contains(e, "/") {
			ip, err := netip.ParseAddr(e)
			if err != nil || ip.Zone() != "" {
				return nil, fmt.Errorf("%s: %q is neither a CIDR nor an IP address; use CIDR notation such as 10.0.0.0/8 or ::1/128", FlagName, e)
			}
			prefixes = append(prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a valid CIDR (%v); use CIDR notation such as 10.0.0.0/8 or ::1/128", FlagName, e, err)
		}
		if m := p.Masked(); m != p {
			return nil, fmt.Errorf("%s: %q has bits set after the prefix length; write %s for the network, or %s for the single address",
				FlagName, e, m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
		prefixes = append(prefixes, p)
	}
	return prefixes, nil
}

// A Guard checks targets against the built-in deny lists and the operator's
// allowed prefixes. It is safe for concurrent use.
type Guard struct {
	ssrf *ssrf.Guardian

	// lookup resolves a host name; tests replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewGuard returns a Guard that refuses every address that is not globally
// routable (loopback, private, link-local, shared, documentation, multicast,
// reserved and the like, per the IANA special-purpose registries), except
// those in allowed. A nil list allows nothing extra.
func NewGuard(allowed []netip.Prefix) *Guard {
	var v4, v6 []netip.Prefix
	for _, p := range allowed {
		if !p.IsValid() {
			continue
		}
		p = normalize(p)
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return &Guard{
		// Networks keep the library default, tcp4 and tcp6, but Control
		// checks them itself to word the error.
		ssrf: ssrf.New(
			ssrf.WithAnyPort(),
			ssrf.WithAllowedV4Prefixes(v4...),
			ssrf.WithAllowedV6Prefixes(v6...),
		),
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
	}
}

// normalize turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into the
// IPv4 prefix it covers, since addresses are unmapped before they are
// checked.
func normalize(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// CheckAddr reports whether Herald may connect to ip. It returns nil or an
// *Error.
func (g *Guard) CheckAddr(ip netip.Addr) error {
	return g.checkAddr(ip.String(), ip)
}

// checkAddr checks ip; name is how the target appears in the error.
func (g *Guard) checkAddr(name string, ip netip.Addr) error {
	// An IPv4-mapped IPv6 address reaches the IPv4 address, so it is judged
	// as one; a zone only selects the interface.
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return &Error{Target: name, Reason: "is not a valid IP address"}
	}
	if g.ssrf.SafeAddr(ip) == nil {
		return nil
	}
	return &Error{
		Target: name,
		Addr:   ip,
		Reason: describe(ip),
		Hint:   "if this is intended, allow it with " + FlagName + " " + suggest(ip).String(),
	}
}

var (
	metadataV4 = netip.MustParseAddr("169.254.169.254")
	metadataV6 = netip.MustParseAddr("fd00:ec2::254")
	sharedV4   = netip.MustParsePrefix("100.64.0.0/10")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	docs       = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("3fff::/20"),
	}
)

// describe says what kind of address ip is, for a refusal. ip is unmapped.
func describe(ip netip.Addr) string {
	switch {
	case ip.IsUnspecified():
		return "is the unspecified address, which reaches this host"
	case ip.IsLoopback():
		return "is a loopback address"
	case ip == metadataV4:
		return "is a link-local address (the cloud metadata service)"
	case ip == metadataV6:
		return "is a private address (the cloud metadata service)"
	case ip.IsPrivate():
		return "is a private address"
	case ip.IsLinkLocalUnicast():
		return "is a link-local address"
	case ip.IsMulticast():
		return "is a multicast address"
	case sharedV4.Contains(ip):
		return "is a shared (carrier-grade NAT) address"
	case nat64.Contains(ip):
		return "is a NAT64 address"
	}
	for _, p := range docs {
		if p.Contains(ip) {
			return "is a documentation address"
		}
	}
	return "is not a globally routable address"
}

// suggest returns the prefix to propose for allowing ip: the loopback range
// for a loopback address, else only ip itself.
func suggest(ip netip.Addr) netip.Prefix {
	if ip.IsLoopback() && ip.Is4() {
		return netip.MustParsePrefix("127.0.0.0/8")
	}
	return netip.PrefixFrom(ip, ip.BitLen())
}

// CheckURL checks a target URL as it is saved: the scheme must be http or
// https, the URL must have a host and no credentials, and every address the
// host resolves to must be allowed. It returns nil, an *Error, or the
// context's error if ctx ends first.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the whole URL
		}
		return &Error{Target: quote(raw), Reason: "is not a valid URL", Err: err,
			Hint: "use an absolute URL such as https://example.com/webhooks"}
	}
	shown := strconv.Quote(u.Redacted())
	switch u.Scheme {
	case "http", "https":
	case "":
		return &Error{Target: shown, Reason: "has no scheme",
			Hint: "use an absolute URL such as https://example.com/webhooks"}
	default:
		return &Error{Target: shown, Reason: fmt.Sprintf("has unsupported scheme %q", u.Scheme),
			Hint: "only http and https are supported"}
	}
	if u.User != nil {
		return &Error{Target: shown, Reason: "contains credentials (user:password@)",
			Hint: "remove them and send credentials in a request header instead"}
	}
	host := u.Hostname()
	if host == "" {
		return &Error{Target: shown, Reason: "has no host",
			Hint: "use an absolute URL such as https://example.com/webhooks"}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return &Error{Target: shown, Reason: fmt.Sprintf("has invalid port %q", p),
				Hint: "use a port from 1 to 65535"}
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.checkAddr(host, ip)
	}
	if numericHost(host) {
		// Resolvers disagree on names like 2130706433 or 0x7f.1 (some read
		// them as IPv4 addresses); no real host name ends in a number.
		return &Error{Target: host, Reason: "is a number but not an IP address in standard form",
			Hint: "write the address in dotted-decimal form, such as 93.184.215.14"}
	}

	addrs, err := g.lookup(ctx, host)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("checking target %s: %w", host, ctx.Err())
		}
		return &Error{Target: host, Reason: "could not be resolved", Err: err,
			Hint: "check the host name and that it has public DNS records"}
	}
	if len(addrs) == 0 {
		return &Error{Target: host, Reason: "resolves to no IP address",
			Hint: "check the host name and that it has public DNS records"}
	}
	for _, ip := range addrs {
		if err := g.checkAddr(host+" ("+ip.Unmap().String()+")", ip); err != nil {
			return err
		}
	}
	return nil
}

// numericHost reports whether the last label of host is a decimal or
// hexadecimal number, which the WHATWG URL standard treats as an IPv4
// address.
func numericHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		for _, r := range rest {
			if !strings.ContainsRune("0123456789abcdef", r) {
				return false
			}
		}
		return true
	}
	for _, r := range last {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// quote shows a string that failed to parse, shortened.
func quote(s string) string {
	const max = 100
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// Control refuses connections to disallowed addresses. It is meant for
// net.Dialer.Control, which calls it with the resolved IP address just before
// each connection attempt. It returns nil or an *Error.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return &Error{Target: address, Reason: fmt.Sprintf("uses network %q", network),
			Hint: "webhook deliveries use TCP only"}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &Error{Target: quote(address), Reason: "is not an IP address and port", Err: err}
	}
	return g.checkAddr(ap.Addr().String(), ap.Addr())
}

// Dialer returns a net.Dialer with the given connect timeout whose Control is
// g.Control.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: g.Control}
}
