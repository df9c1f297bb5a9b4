package target

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// noDNS makes any name lookup fail the test; literals must not resolve.
func noDNS(t *testing.T, g *Guard) *Guard {
	g.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		t.Errorf("unexpected DNS lookup of %q", host)
		return nil, errors.New("no DNS in this test")
	}
	return g
}

// fakeDNS answers from a fixed table.
func fakeDNS(g *Guard, table map[string][]string) *Guard {
	g.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		addrs, ok := table[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
	return g
}

func prefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseCIDRs(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wantRefused checks that err is an *Error matching ErrRefused and that its
// message contains every fragment.
func wantRefused(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("got %T, want *Error", err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err, f)
		}
	}
}

func TestCheckURLRefusesNonGlobalLiterals(t *testing.T) {
	g := noDNS(t, NewGuard(nil))
	tests := []struct {
		url       string
		fragments []string
	}{
		{"http://127.0.0.1/hook", []string{"target 127.0.0.1 is a loopback address", "--allowed-target-cidrs 127.0.0.0/8"}},
		{"http://127.1.2.3:8080/", []string{"127.1.2.3 is a loopback address"}},
		{"https://10.1.2.3/", []string{"10.1.2.3 is a private address", "--allowed-target-cidrs 10.1.2.3/32"}},
		{"http://172.16.0.1/", []string{"private"}},
		{"http://192.168.1.1/", []string{"private"}},
		{"http://169.254.169.254/latest/meta-data/", []string{"169.254.169.254 is a link-local address (the cloud metadata service)"}},
		{"http://169.254.1.1/", []string{"169.254.1.1 is a link-local address"}},
		{"http://[::1]:9000/", []string{"target ::1 is a loopback address", "--allowed-target-cidrs ::1/128"}},
		{"http://[::ffff:127.0.0.1]/", []string{"::ffff:127.0.0.1 is a loopback address", "127.0.0.0/8"}},
		{"http://[::ffff:10.0.0.1]/", []string{"private"}},
		{"http://0.0.0.0/", []string{"0.0.0.0 is the unspecified address"}},
		{"http://[::]/", []string{"unspecified"}},
		{"http://0.1.2.3/", []string{"not a globally routable address"}},
		{"http://100.64.0.1/", []string{"shared (carrier-grade NAT)"}},
		{"http://192.0.2.1/", []string{"documentation"}},
		{"http://[2001:db8::1]/", []string{"documentation"}},
		{"http://224.0.0.1/", []string{"multicast"}},
		{"http://[ff02::1]/", []string{"multicast"}},
		{"http://255.255.255.255/", []string{"not a globally routable address"}},
		{"http://[fe80::1%25eth0]/", []string{"fe80::1%eth0 is a link-local address"}},
		{"http://[fc00::1]/", []string{"private"}},
		{"http://[fd00:ec2::254]/", []string{"fd00:ec2::254 is a private address (the cloud metadata service)"}},
		{"http://[64:ff9b::7f00:1]/", []string{"NAT64"}},
		{"http://[2002:7f00:1::]/", []string{"not a globally routable address"}}, // 6to4 of 127.0.0.1
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			wantRefused(t, g.CheckURL(ctx(t), tt.url), tt.fragments...)
		})
	}
}

func TestCheckURLAllowsPublicLiterals(t *testing.T) {
	g := noDNS(t, NewGuard(nil))
	for _, u := range []string{
		"http://93.184.215.14/",
		"https://93.184.215.14:8443/hooks?x=1",
		"http://93.184.215.14:1/", // any port
		"HTTPS://93.184.215.14/",  // scheme case does not matter
		"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
		"http://[::ffff:93.184.215.14]/",
	} {
		if err := g.CheckURL(ctx(t), u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
}

func TestCheckURLRefusesMalformed(t *testing.T) {
	g := noDNS(t, NewGuard(nil))
	tests := []struct {
		url       string
		fragments []string
	}{
		{"ftp://93.184.215.14/file", []string{`unsupported scheme "ftp"`, "http and https"}},
		{"file:///etc/passwd", []string{`unsupported scheme "file"`}},
		{"gopher://93.184.215.14/", []string{"unsupported scheme"}},
		{"93.184.215.14/hook", []string{"has no scheme"}},
		{"//93.184.215.14/hook", []string{"has no scheme"}},
		{"", []string{"has no scheme"}},
		{"http:///hook", []string{"has no host"}},
		{"http://:8080/hook", []string{"has no host"}},
		{"http:93.184.215.14", []string{"has no host"}},
		{"http://user:hunter2@93.184.215.14/", []string{"contains credentials"}},
		{"http://93.184.215.14:0/", []string{`invalid port "0"`}},
		{"http://93.184.215.14:65536/", []string{`invalid port "65536"`}},
		{"http://exa mple.com/", []string{"is not a valid URL"}},
		{"http://[::1/", []string{"is not a valid URL"}},
		{"http://2130706433/", []string{"2130706433 is a number"}},
		{"http://0x7f.1/", []string{"is a number"}},
		{"http://127.1/", []string{"is a number"}},
		{"http://example.0x7f/", []string{"is a number"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			wantRefused(t, g.CheckURL(ctx(t), tt.url), tt.fragments...)
		})
	}
	// The password never appears in the message.
	err := g.CheckURL(ctx(t), "ftp://user:hunter2@93.184.215.14/")
	wantRefused(t, err)
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the password", err)
	}
}

func TestCheckURLResolvesNames(t *testing.T) {
	g := fakeDNS(NewGuard(nil), map[string][]string{
		"public.example":   {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"internal.example": {"10.0.0.7"},
		"mixed.example":    {"93.184.215.14", "192.168.0.10"},
		"mapped.example":   {"::ffff:127.0.0.1"},
		"empty.example":    {},
	})
	if err := g.CheckURL(ctx(t), "https://public.example/hook"); err != nil {
		t.Errorf("public name: %v", err)
	}
	wantRefused(t, g.CheckURL(ctx(t), "https://internal.example/"), "internal.example (10.0.0.7) is a private address", "10.0.0.7/32")
	// Every address must be allowed, not just one.
	wantRefused(t, g.CheckURL(ctx(t), "https://mixed.example/"), "mixed.example (192.168.0.10) is a private address")
	wantRefused(t, g.CheckURL(ctx(t), "https://mapped.example/"), "mapped.example (127.0.0.1) is a loopback address")
	wantRefused(t, g.CheckURL(ctx(t), "https://empty.example/"), "resolves to no IP address")

	err := g.CheckURL(ctx(t), "https://missing.example/")
	wantRefused(t, err, "missing.example could not be resolved", "no such host")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Errorf("the DNS error is not wrapped: %v", err)
	}

	// A cancelled context is not a refusal.
	c, cancel := context.WithCancel(t.Context())
	cancel()
	g.lookup = func(ctx context.Context, _ string) ([]netip.Addr, error) { return nil, ctx.Err() }
	err = g.CheckURL(c, "https://public.example/")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrRefused) {
		t.Errorf("cancelled: got %v, want context.Canceled and not ErrRefused", err)
	}
}

// localhost resolves, through the real resolver, to a loopback address.
func TestCheckURLLocalhost(t *testing.T) {
	g := NewGuard(nil)
	wantRefused(t, g.CheckURL(ctx(t), "http://localhost:8080/hook"), "localhost (", "is a loopback address", "--allowed-target-cidrs")

	g = NewGuard(prefixes(t, "127.0.0.0/8,::1/128"))
	if err := g.CheckURL(ctx(t), "http://localhost:8080/hook"); err != nil {
		t.Errorf("with loopback allowed: %v", err)
	}
}

func TestAllowList(t *testing.T) {
	g := noDNS(t, NewGuard(prefixes(t, "127.0.0.0/8 10.1.0.0/16, ::1, fd00::/8")))
	for _, u := range []string{
		"http://127.0.0.1:8080/",
		"http://127.9.9.9/",
		"http://[::ffff:127.0.0.1]/", // mapped addresses follow the IPv4 list
		"http://10.1.2.3/",
		"http://[::1]/",
		"http://[fd12::1]/",
		"http://93.184.215.14/", // public addresses stay allowed
	} {
		if err := g.CheckURL(ctx(t), u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range []string{
		"http://10.2.0.1/",
		"http://169.254.169.254/",
		"http://[fe80::1]/",
		"http://[fc00::1]/",
		"ftp://127.0.0.1/", // the allow-list does not relax the scheme
	} {
		wantRefused(t, g.CheckURL(ctx(t), u))
	}

	// An IPv4-mapped prefix covers the IPv4 addresses.
	g = noDNS(t, NewGuard(prefixes(t, "::ffff:10.1.0.0/112")))
	for _, a := range []string{"10.1.3.4", "::ffff:10.1.3.4"} {
		if err := g.CheckAddr(netip.MustParseAddr(a)); err != nil {
			t.Errorf("mapped prefix, %s: %v", a, err)
		}
	}
	wantRefused(t, g.CheckAddr(netip.MustParseAddr("10.2.0.1")), "10.2.0.1 is a private address")
}

func TestParseCIDRs(t *testing.T) {
	for _, s := range []string{"", "  ", ",", " , ,"} {
		got, err := ParseCIDRs(s)
		if got != nil || err != nil {
			t.Errorf("ParseCIDRs(%q) = %v, %v; want nil, nil", s, got, err)
		}
	}
	got, err := ParseCIDRs("127.0.0.0/8,::1/128, 10.0.0.0/8\n192.168.1.5 fd00::1")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.5/32"),
		netip.MustParsePrefix("fd00::1/128"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCIDRs = %v, want %v", got, want)
	}

	for _, tt := range []struct{ in, bad, mention string }{
		{"127.0.0.0/8,10.0.0.0/33", "10.0.0.0/33", "CIDR"},
		{"127.0.0.0/8 banana", "banana", "CIDR"},
		{"10.1.2.3/8", "10.1.2.3/8", "10.0.0.0/8"},
		{"fe80::1%eth0", "fe80::1%eth0", "CIDR"},
		{"127.0.0.0/", "127.0.0.0/", "CIDR"},
	} {
		_, err := ParseCIDRs(tt.in)
		if err == nil {
			t.Errorf("ParseCIDRs(%q) = nil error", tt.in)
			continue
		}
		for _, f := range []string{`"` + tt.bad + `"`, tt.mention, "--allowed-target-cidrs"} {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("ParseCIDRs(%q) error %q does not contain %q", tt.in, err, f)
			}
		}
	}
}

func TestControl(t *testing.T) {
	g := NewGuard(nil)
	for _, tt := range []struct {
		network, address string
		ok               bool
	}{
		{"tcp4", "93.184.215.14:443", true},
		{"tcp4", "93.184.215.14:8080", true}, // any port
		{"tcp6", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443", true},
		{"tcp4", "127.0.0.1:443", false},
		{"tcp6", "[::1]:80", false},
		{"tcp6", "[::ffff:127.0.0.1]:80", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[fe80::1%eth0]:80", false},
		{"udp4", "93.184.215.14:53", false},
		{"tcp4", "example.com:443", false}, // Control always gets an IP
	} {
		err := g.Control(tt.network, tt.address, nil)
		if tt.ok && err != nil {
			t.Errorf("Control(%s, %s) = %v, want nil", tt.network, tt.address, err)
		}
		if !tt.ok {
			wantRefused(t, err)
		}
	}
}

// The connect-time check, end to end: a real server on 127.0.0.1 reached
// through an http.Client whose dialer uses the Guard.
func TestDialerRefusesAtConnectTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	client := func(g *Guard) *http.Client {
		return &http.Client{
			Transport: &http.Transport{
				Proxy:       nil, // the guard must see the target, not a proxy
				DialContext: g.Dialer(5 * time.Second).DialContext,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       10 * time.Second,
		}
	}
	get := func(c *http.Client, u string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}

	// Refused without the allow-list, by IP and by name (as after a DNS
	// rebinding: the name is only resolved at dial time).
	refused := client(NewGuard(nil))
	_, err := get(refused, srv.URL)
	wantRefused(t, err, "target 127.0.0.1 is a loopback address", "--allowed-target-cidrs 127.0.0.0/8")
	for _, u := range []string{srv.URL, "http://localhost:" + strconv.Itoa(port) + "/"} {
		_, err := get(refused, u)
		wantRefused(t, err, "is a loopback address", "--allowed-target-cidrs")
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Errorf("%s: got %T, want a *url.Error from the client", u, err)
		}
	}

	// Allowed with it (::1 too, in case localhost resolves to it first).
	allowed := client(NewGuard(prefixes(t, "127.0.0.0/8,::1/128")))
	for _, u := range []string{srv.URL, "http://localhost:" + strconv.Itoa(port) + "/"} {
		resp, err := get(allowed, u)
		if err != nil {
			t.Fatalf("%s with 127.0.0.0/8 allowed: %v", u, err)
		}
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s: status %d, want 204", u, resp.StatusCode)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	err := NewGuard(nil).CheckAddr(netip.MustParseAddr("127.0.0.1"))
	want := "target 127.0.0.1 is a loopback address; if this is intended, allow it with --allowed-target-cidrs 127.0.0.0/8"
	if err == nil || err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	var te *Error
	if !errors.As(err, &te) || te.Addr != netip.MustParseAddr("127.0.0.1") || te.Reason != "is a loopback address" {
		t.Errorf("fields = %+v", te)
	}
}
