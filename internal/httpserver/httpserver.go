// Package httpserver serves Herald's net/http handlers from fasthttp's
// server, with room for a route served from fasthttp's own types.
//
// net/http's server cost more CPU per request than Herald's whole publish
// handler (a goroutine handing-off and a background read per request, and
// a fresh request, header map and context each time); fasthttp's reuses
// its buffers and works on the connection's goroutine. Its own net/http
// adaptor hands handlers strings that point into those reused buffers,
// so a string a handler keeps (a cache key, say) would change under it;
// this one copies everything it hands over, as net/http does.
package httpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Config sets up a Server.
type Config struct {
	// Handler serves every request Fast does not take.
	Handler http.Handler
	// Fast, when set, may answer a request from fasthttp's own types; it
	// reports false, having written nothing, for the ones it leaves to
	// Handler.
	Fast func(ctx *fasthttp.RequestCtx) bool
	// BodyLimit bounds a request's body by its request URI: fasthttp reads
	// a body whole before the handler runs, and refuses a larger one with
	// 413. It should be a little above the route's own limit, so the
	// route answers an oversized body itself, in its own words.
	BodyLimit   func(uri []byte) int
	ReadTimeout time.Duration
	IdleTimeout time.Duration
	Logger      *slog.Logger
	// Refuse answers a request refused before any handler ran (too large,
	// or not HTTP), in the API's own format.
	Refuse func(w http.ResponseWriter, status int, detail string)
}

// Server is an HTTP/1.1 server.
type Server struct {
	srv    *fasthttp.Server
	log    *slog.Logger
	h      http.Handler
	fast   func(ctx *fasthttp.RequestCtx) bool
	refuse func(w http.ResponseWriter, status int, detail string)
	base   context.Context
	stop   context.CancelFunc
}

// New returns a Server.
func New(cfg Config) *Server {
	base, stop := context.WithCancel(context.Background())
	s := &Server{log: cfg.Logger, h: cfg.Handler, fast: cfg.Fast, refuse: cfg.Refuse, base: base, stop: stop}
	s.srv = &fasthttp.Server{
		Handler:            s.serve,
		ReadTimeout:        cfg.ReadTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		MaxRequestBodySize: cfg.BodyLimit(nil),
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{MaxRequestBodySize: cfg.BodyLimit(h.RequestURI())}
		},
		// The request line and headers must fit; each connection keeps
		// a buffer this size, so it stays small (nginx allows 8 KiB a line).
		ReadBufferSize:        16 << 10,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		Logger:                logger{cfg.Logger},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			status, detail := refusal(err)
			w := NewResponseWriter(ctx)
			s.refuse(w, status, detail)
			w.Finish()
		},
	}
	return s
}

// refusal says why fasthttp could not read a request.
func refusal(err error) (int, string) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "the body is over this route's limit; send less (event data may be at most 256 KiB, a batch body 16 MiB: split large batches)"
	case errors.As(err, &small):
		return http.StatusRequestHeaderFieldsTooLarge, "the request line and headers are over 16 KiB; send fewer or shorter headers"
	case errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusRequestTimeout, "the request was not received in time"
	}
	return http.StatusBadRequest, "the request is not valid HTTP/1.1: " + err.Error()
}

// Serve serves connections from ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(lingerListener{ln}) }

// lingerListener's connections close as net/http's do: the write side
// first, then up to lingerTime reading and dropping what the client still
// sends, and only then for good. A client still sending a body the server
// refused (fasthttp answers 413 before reading it) then reads the answer
// instead of a reset: closing a socket with unread data resets it.
type lingerListener struct{ net.Listener }

const lingerTime = 500 * time.Millisecond

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if c.CloseWrite() != nil {
			c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.Copy(io.Discard, c.TCPConn)
			c.TCPConn.Close()
		}()
	})
	return nil
}

// Shutdown stops accepting, lets requests in progress finish and closes
// idle connections, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.ShutdownWithContext(ctx)
	s.stop()
	return err
}

func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	defer func() {
		if v := recover(); v != nil {
			ctx.Response.Reset()
			ctx.SetConnectionClose()
			if v == http.ErrAbortHandler { // as net/http: drop the connection unanswered
				ctx.HijackSetNoResponse(true)
				ctx.Hijack(func(c net.Conn) { c.Close() })
				return
			}
			s.log.Error("panic serving a request", "method", string(ctx.Method()), "path", string(ctx.Path()), "panic", v, "stack", string(debug.Stack()))
			ctx.SetStatusCode(http.StatusInternalServerError)
		}
	}()
	if s.fast != nil && s.fast(ctx) {
		return
	}
	w := NewResponseWriter(ctx)
	defer w.Finish()
	r, err := request(ctx)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "the request target is not a URL path: "+err.Error())
		return
	}
	reqCtx, cancel := context.WithCancel(s.base)
	defer cancel() // as net/http: a request's context ends with its handler
	s.h.ServeHTTP(w, r.WithContext(reqCtx))
}

// request builds the net/http request for ctx, copying every byte:
// fasthttp reuses its buffers once the handler returns.
func request(ctx *fasthttp.RequestCtx) (*http.Request, error) {
	uri := string(ctx.RequestURI())
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, err
	}
	r := &http.Request{
		Method:     string(ctx.Method()),
		URL:        u,
		RequestURI: uri,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:     make(http.Header),
		Host:       string(ctx.Host()),
		RemoteAddr: ctx.RemoteAddr().String(),
		Body:       http.NoBody,
	}
	if !ctx.Request.Header.IsHTTP11() {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	for k, v := range ctx.Request.Header.All() {
		r.Header.Add(string(k), string(v))
	}
	if body := ctx.PostBody(); len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(bytes.Clone(body)))
		r.ContentLength = int64(len(body))
	}
	return r, nil
}

// ResponseWriter is http.ResponseWriter onto a fasthttp response, with
// net/http's rules: the status goes out with the first write (200 if none
// was set), later statuses are ignored, and a body without a Content-Type
// has one sniffed.
type ResponseWriter struct {
	ctx    *fasthttp.RequestCtx
	header http.Header
	status int
}

// NewResponseWriter writes to ctx's response; call Finish when done.
func NewResponseWriter(ctx *fasthttp.RequestCtx) *ResponseWriter {
	return &ResponseWriter{ctx: ctx, header: make(http.Header, 4)}
}

// Header is the response's header, sent with the status.
func (w *ResponseWriter) Header() http.Header { return w.header }

// WriteHeader sets the status and the header; only the first call counts.
func (w *ResponseWriter) WriteHeader(status int) {
	if w.status != 0 {
		return
	}
	w.status = status
	w.ctx.SetStatusCode(status)
	for k, vs := range w.header {
		if k == "Content-Length" {
			continue // fasthttp sets it from the body
		}
		for _, v := range vs {
			w.ctx.Response.Header.Add(k, v)
		}
	}
}

// Write appends to the body.
func (w *ResponseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		if w.header.Get("Content-Type") == "" && len(b) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(b))
		}
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	return w.ctx.Write(b)
}

// Finish sends the status when the handler wrote nothing.
func (w *ResponseWriter) Finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status < 200 || status == http.StatusNoContent || status == http.StatusNotModified)
}

// logger sends fasthttp's messages (connection errors) to slog.
type logger struct{ log *slog.Logger }

func (l logger) Printf(format string, args ...any) {
	l.log.Warn("http: " + fmt.Sprintf(format, args...))
}
