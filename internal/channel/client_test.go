package channel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/target"
)

// These tests run the Sender against real local receivers for what its
// HTTP client must get right beyond a plain 2xx.

func loopbackSender() *Sender {
	return NewSender(target.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}), "Herald/test")
}

func testChannel(url string, timeoutS int) *herald.Channel {
	return &herald.Channel{ID: "ch_test", Kind: herald.ChannelWebhook, URL: url, Enabled: true, TimeoutS: timeoutS,
		Headers: map[string]string{"X-Shop": "1"}, Policy: herald.StandardPolicy(),
		Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}
}

func send(s *Sender, ctx context.Context, c *herald.Channel) Result {
	return s.Send(ctx, c, testEvent(`{"order":{"id":"1"}}`), time.Now())
}

// TestSendRequestAsConfigured: the receiver gets a signed POST with the
// channel's headers at exactly the channel's URL (no path clean-up).
func TestSendRequestAsConfigured(t *testing.T) {
	var got *http.Request
	var body []byte
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(429)
		_, _ = io.WriteString(w, "slow down")
	}))
	defer rc.Close()
	s := loopbackSender()
	defer s.Close()
	res := send(s, context.Background(), testChannel(rc.URL+"/a//b/../c?x=1&y=%2F", 5))
	if res.StatusCode != 429 || res.ErrorClass != herald.ErrClassStatus || res.Body != "slow down" || res.RetryAfter != 7*time.Second {
		t.Fatalf("result %+v", res)
	}
	if got.Method != http.MethodPost || got.RequestURI != "/a//b/../c?x=1&y=%2F" {
		t.Errorf("request %s %s, want POST to the URL exactly as configured", got.Method, got.RequestURI)
	}
	for k, want := range map[string]string{"X-Shop": "1", "Content-Type": "application/json", "User-Agent": "Herald/test", "Webhook-Id": "evt_01JD000000000000000000000"} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if got.Header.Get("Webhook-Signature") == "" || got.Header.Get("Webhook-Timestamp") == "" || string(body) != string(Body(testEvent(`{"order":{"id":"1"}}`))) {
		t.Errorf("unsigned or wrong body: %v %s", got.Header, body)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSendLongBodyKeptShort: a 2xx with a megabyte body is a success and
// the attempt keeps only its first MaxResponseBody bytes.
func TestSendLongBodyKeptShort(t *testing.T) {
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("é", 1<<19))
	}))
	defer rc.Close()
	s := loopbackSender()
	defer s.Close()
	res := send(s, context.Background(), testChannel(rc.URL, 5))
	if res.StatusCode != 200 || res.ErrorClass != "" || len(res.Body) > herald.MaxResponseBody || len(res.Body) < herald.MaxResponseBody-2 {
		t.Fatalf("status %d class %q body %d bytes", res.StatusCode, res.ErrorClass, len(res.Body))
	}
}

// timesOut sends to rc with a timeout of 1 s and returns the result and
// how long it took.
func timesOut(rc *httptest.Server) (Result, time.Duration) {
	s := loopbackSender()
	defer s.Close()
	start := time.Now()
	res := send(s, context.Background(), testChannel(rc.URL, 1))
	return res, time.Since(start)
}

// TestSendSlowBodyIsTimeout: the status arrived but the body did not
// finish within the channel's timeout.
func TestSendSlowBodyIsTimeout(t *testing.T) {
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer rc.Close()
	res, took := timesOut(rc)
	if res.ErrorClass != herald.ErrClassTimeout || res.StatusCode != 200 || took > 5*time.Second {
		t.Fatalf("result %+v after %v, want a timeout with status 200 after about 1 s", res, took)
	}
}

// TestSendNoAnswerIsTimeout: a receiver that never answers costs the
// channel's timeout, then counts as a timeout.
func TestSendNoAnswerIsTimeout(t *testing.T) {
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		<-r.Context().Done()
	}))
	defer rc.Close()
	res, took := timesOut(rc)
	if res.ErrorClass != herald.ErrClassTimeout || took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("result %+v after %v, want a timeout after about 1 s", res, took)
	}
}

// TestSendCutOff: cancelling the context (shutdown) ends a request in
// flight at once, reported as canceled (not an attempt).
func TestSendCutOff(t *testing.T) {
	arrived := make(chan struct{}, 1)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer rc.Close()
	s := loopbackSender()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	start := time.Now()
	res := send(s, ctx, testChannel(rc.URL, 30))
	if res.ErrorClass != ErrClassCanceled || time.Since(start) > 5*time.Second {
		t.Fatalf("result %+v after %v, want canceled at once", res, time.Since(start))
	}
	// The client still works for the next send.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer ok.Close()
	if res := send(s, context.Background(), testChannel(ok.URL, 5)); res.StatusCode != 204 {
		t.Fatalf("send after a cut-off: %+v", res)
	}
}

// TestSendUntrustedTLS: a certificate nobody vouches for is a TLS failure.
func TestSendUntrustedTLS(t *testing.T) {
	rc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer rc.Close()
	rc.Config.ErrorLog = nil
	s := loopbackSender()
	defer s.Close()
	if res := send(s, context.Background(), testChannel(rc.URL, 5)); res.ErrorClass != herald.ErrClassTLS {
		t.Fatalf("result %+v, want error class tls", res)
	}
}

// TestSendRefusedTarget: the guard refuses an address at connect time.
func TestSendRefusedTarget(t *testing.T) {
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer rc.Close()
	s := NewSender(target.NewGuard(nil), "Herald/test")
	defer s.Close()
	if res := send(s, context.Background(), testChannel(rc.URL, 5)); res.ErrorClass != herald.ErrClassRefused {
		t.Fatalf("result %+v, want error class refused", res)
	}
}

// TestSendAfterReceiverClosedIdleConnection: a receiver that drops a
// keep-alive connection after answering (without saying so) does not
// make the next send fail: it goes out again on a fresh connection.
func TestSendAfterReceiverClosedIdleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns, requests atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				requests.Add(1)
				// Keep-alive by the headers, closed right after.
				_, _ = fmt.Fprint(conn, "HTTP/1.1 204 No Content\r\n\r\n")
			}()
		}
	}()
	s := loopbackSender()
	defer s.Close()
	c := testChannel("http://"+ln.Addr().String()+"/hook", 5)
	for i := range 3 {
		if res := send(s, context.Background(), c); res.StatusCode != 204 {
			t.Fatalf("send %d: %+v", i+1, res)
		}
		time.Sleep(50 * time.Millisecond) // let the close arrive
	}
	if requests.Load() != 3 {
		t.Fatalf("%d requests answered, want 3", requests.Load())
	}
}
