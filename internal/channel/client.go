package channel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/target"
)

// client is the HTTP/1.1 client every channel request goes through. It is
// fasthttp rather than net/http: net/http hands each request between the
// caller and two goroutines per connection, and in Herald's benchmark that
// made the sending side cost more CPU than the receiver; fasthttp does the
// whole exchange on the caller's goroutine (15–19% less CPU per delivery in
// the burst and fanout scenarios, measured). What that costs: no HTTP/2
// (webhook requests are small and one per exchange anyway) and no
// per-request context, which cutOff makes up for.
type client struct {
	fc *fasthttp.Client

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

// Client settings.
const (
	dialTimeout = 10 * time.Second
	// idleTimeout is below the 5 s keep-alive of common receivers (Node.js),
	// so Herald usually drops an idle connection before the receiver does.
	idleTimeout = 4 * time.Second
	// drainLimit is how much of a long response body is read and dropped
	// so the connection can be used again.
	drainLimit = 64 << 10
)

func newClient(guard *target.Guard) *client {
	c := &client{conns: map[*trackedConn]struct{}{}}
	c.fc = &fasthttp.Client{
		// Every connection is made by the guard's dialer, which refuses a
		// disallowed address at connect time; there is no proxy to hide
		// the real target from it.
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			conn, err := guard.Dialer(min(timeout, dialTimeout)).Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			return c.track(conn), nil
		},
		MaxConnsPerHost:     1 << 14, // the dispatcher bounds requests in flight
		MaxConnWaitTimeout:  dialTimeout,
		MaxIdleConnDuration: idleTimeout,
		ReadBufferSize:      16 << 10, // response headers up to 16 KiB
		// Bodies are read as a stream so a long one is cut, not refused.
		StreamResponseBody: true,
		// The URL goes out exactly as the channel has it.
		DisablePathNormalizing: true,
		// A receiver may close a keep-alive connection just as Herald
		// reuses it; that fails before any answer, and one more try on a
		// fresh connection is what every HTTP client does. Nothing else is
		// retried here: retries are the channel's policy's business.
		RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
			if ctx, ok := req.UserValue(ctxKey{}).(context.Context); ok && ctx.Err() != nil {
				return false, false // cut off, not a stale connection
			}
			return false, attempts == 1 && staleConn(err)
		},
	}
	return c
}

// ctxKey keeps a request's context on it for RetryIfErr.
type ctxKey struct{}

func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// trackedConn is a connection cutOff can close.
type trackedConn struct {
	net.Conn
	c    *client
	once sync.Once
}

func (c *client) track(conn net.Conn) *trackedConn {
	tc := &trackedConn{Conn: conn, c: c}
	c.mu.Lock()
	c.conns[tc] = struct{}{}
	c.mu.Unlock()
	return tc
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.c.mu.Lock()
		delete(t.c.conns, t)
		t.c.mu.Unlock()
	})
	return t.Conn.Close()
}

// cutOff closes every connection, which ends every request in flight.
func (c *client) cutOff() {
	c.mu.Lock()
	conns := make([]*trackedConn, 0, len(c.conns))
	for tc := range c.conns {
		conns = append(conns, tc)
	}
	c.mu.Unlock()
	for _, tc := range conns {
		_ = tc.Close()
	}
}

func (c *client) close() { c.fc.CloseIdleConnections() }

// newRequest starts a request with a channel's own headers; the caller
// releases it (fasthttp.ReleaseRequest).
func newRequest(method, url string, headers map[string]string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// do sends req within timeout and reads what came back, bounded.
// Cancelling ctx is how shutdown cuts requests off: it closes every
// connection of the client, so it is meant for a context all sends share
// (the dispatcher's); a context that is never cancelled costs nothing.
func (c *client) do(ctx context.Context, req *fasthttp.Request, timeout time.Duration) Result {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if ctx.Done() != nil {
		if ctx.Err() != nil {
			return Result{ErrorClass: classify(ctx, ctx.Err()), Error: ctx.Err().Error()}
		}
		defer context.AfterFunc(ctx, c.cutOff)()
		req.SetUserValue(ctxKey{}, ctx)
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	start := time.Now()
	if err := c.fc.DoDeadline(req, resp, deadline); err != nil {
		return Result{Duration: time.Since(start), ErrorClass: classify(ctx, err), Error: describe(err)}
	}
	defer func() { _ = resp.CloseBodyStream() }()
	var buf []byte
	var readErr error
	if stream := resp.BodyStream(); stream != nil {
		buf, readErr = io.ReadAll(io.LimitReader(stream, herald.MaxResponseBody))
		if readErr == nil {
			_, _ = io.CopyN(io.Discard, stream, drainLimit)
		}
	} else {
		buf = resp.Body()
		buf = buf[:min(len(buf), herald.MaxResponseBody)]
	}
	r := Result{
		StatusCode: resp.StatusCode(),
		Body:       validUTF8(buf),
		Duration:   time.Since(start),
		RetryAfter: retryAfter(string(resp.Header.Peek("Retry-After")), time.Now()),
	}
	if readErr != nil {
		if class := classify(ctx, readErr); class == ErrClassCanceled {
			r.ErrorClass, r.Error = class, describe(readErr)
			return r
		}
		if time.Now().After(deadline) || isTimeout(readErr) {
			// The status arrived but the body did not finish in time.
			r.ErrorClass, r.Error = herald.ErrClassTimeout, "response body not complete within the timeout"
			return r
		}
	}
	if r.StatusCode < 200 || r.StatusCode > 299 {
		r.ErrorClass, r.Error = herald.ErrClassStatus, fmt.Sprintf("receiver answered %d", r.StatusCode)
	}
	return r
}

// ErrClassCanceled marks a request cut off by shutdown: not an attempt.
const ErrClassCanceled = "canceled"

func classify(ctx context.Context, err error) string {
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.Is(err, target.ErrRefused):
		return herald.ErrClassRefused
	case errors.Is(ctx.Err(), context.Canceled):
		return ErrClassCanceled
	case errors.Is(ctx.Err(), context.DeadlineExceeded), isTimeout(err):
		return herald.ErrClassTimeout
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return herald.ErrClassTLS
	default:
		return herald.ErrClassConnect
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}

// describe says what went wrong without the layers of wrapping: the
// innermost useful message.
func describe(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "no answer within the channel's timeout"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "the receiver closed the connection without answering"
	}
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		if inner := uerr.Unwrap(); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}
