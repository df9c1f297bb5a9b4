package httpserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// start serves h (and fast) on a loopback port and returns its base URL.
func start(t *testing.T, h http.Handler, fast func(*fasthttp.RequestCtx) bool) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Handler: h, Fast: fast, BodyLimit: func([]byte) int { return 1 << 20 }, ReadTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
		Refuse: func(w http.ResponseWriter, status int, detail string) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"status":%d,"detail":%q}`, status, detail)
		}})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String(), s
}

func do(t *testing.T, method, url string, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// rawRequest sends text as is and returns everything the server answers
// before closing the connection.
func rawRequest(t *testing.T, url, text string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, text); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, _ := io.ReadAll(c)
	return string(raw)
}

// TestHandlersKeepWhatTheyAreGiven: every string a handler is handed is
// its own, though fasthttp reuses its buffers for the next request on the
// connection (fasthttp's own adaptor hands out views of them).
func TestHandlersKeepWhatTheyAreGiven(t *testing.T) {
	type kept struct{ path, value, header, body, query string }
	var mu sync.Mutex
	var got []kept
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items/{name}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, kept{r.URL.Path, r.PathValue("name"), r.Header.Get("X-Item"), string(b), r.URL.Query().Get("q")})
		mu.Unlock()
	})
	url, _ := start(t, mux, nil)
	const n = 50
	for i := range n {
		name := fmt.Sprintf("item-%03d-%s", i, strings.Repeat("x", i))
		do(t, "POST", url+"/items/"+name+"?q="+name, "body of "+name, "X-Item", "header of "+name)
	}
	if len(got) != n {
		t.Fatalf("%d requests handled, want %d", len(got), n)
	}
	for i, k := range got {
		name := fmt.Sprintf("item-%03d-%s", i, strings.Repeat("x", i))
		want := kept{"/items/" + name, name, "header of " + name, "body of " + name, name}
		if k != want {
			t.Errorf("request %d kept %+v; want %+v", i, k, want)
		}
	}
}

// TestNetHTTPResponseRules: statuses, headers and bodies go out as
// net/http sends them.
func TestNetHTTPResponseRules(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/implicit", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html><body>hi</body></html>") })
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusTeapot) // ignored, as in net/http
		w.Header().Set("X-Late", "ignored")
		io.WriteString(w, `{"ok":true}`)
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "dropped"); err != http.ErrBodyNotAllowed {
			t.Errorf("a body after 204: %v, want ErrBodyNotAllowed", err)
		}
	})
	url, _ := start(t, mux, nil)

	resp, body := do(t, "GET", url+"/implicit", "")
	if resp.StatusCode != 200 || body != "<html><body>hi</body></html>" || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("implicit: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = do(t, "GET", url+"/json", "")
	if resp.StatusCode != 201 || body != `{"ok":true}` || resp.Header.Get("Content-Type") != "application/json" ||
		len(resp.Cookies()) != 2 || resp.Header.Get("X-Late") != "" {
		t.Errorf("json: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = do(t, "GET", url+"/empty", "")
	if resp.StatusCode != 200 || body != "" {
		t.Errorf("empty: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", url+"/nocontent", "")
	if resp.StatusCode != 204 || body != "" {
		t.Errorf("204: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, "HEAD", url+"/implicit", "")
	if resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", url+"/nowhere", "")
	if resp.StatusCode != 404 || !strings.Contains(body, "not found") {
		t.Errorf("unknown path: %d %q", resp.StatusCode, body)
	}
}

// TestPanicsAndRefusals: a handler's panic answers 500 and the server goes
// on; an aborted handler closes the connection unanswered; a body over
// the limit and what is not HTTP are refused in the caller's words.
func TestPanicsAndRefusals(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	url, _ := start(t, mux, nil)

	if resp, _ := do(t, "GET", url+"/panic", ""); resp.StatusCode != 500 {
		t.Errorf("panic: %d, want 500", resp.StatusCode)
	}
	if _, body := do(t, "GET", url+"/ok", ""); body != "ok" {
		t.Errorf("after a panic: %q", body)
	}
	if resp, err := http.Get(url + "/abort"); err == nil {
		resp.Body.Close()
		t.Errorf("an aborted handler answered %d", resp.StatusCode)
	}
	big := strings.Repeat("0123456789", 100<<10)
	if _, body := do(t, "POST", url+"/echo", big); body != big {
		t.Errorf("a body within the limit came back as %d bytes, want %d", len(body), len(big))
	}
	// Over the limit: refused before it is read, and the client, still
	// sending, reads the refusal rather than a reset.
	for range 3 {
		resp, body := do(t, "POST", url+"/echo", big+big+big)
		if resp.StatusCode != 413 || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, "limit") {
			t.Errorf("too large: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if _, body := do(t, "POST", url+"/echo", "within"); body != "within" {
		t.Errorf("echo: %q", body)
	}
	// Headers: 12 KiB are read, 20 KiB refused in the caller's words.
	if resp, body := do(t, "POST", url+"/echo", "h", "X-Big", strings.Repeat("h", 12<<10)); resp.StatusCode != 200 || body != "h" {
		t.Errorf("12 KiB of headers: %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", url+"/echo", "h", "X-Big", strings.Repeat("h", 20<<10)); resp.StatusCode != 431 || !strings.Contains(body, "16 KiB") {
		t.Errorf("20 KiB of headers: %d %q", resp.StatusCode, body)
	}
	// What is not HTTP is refused in the caller's words.
	raw := rawRequest(t, url, "NOT HTTP\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 400") || !strings.Contains(raw, "application/problem+json") {
		t.Errorf("a request that is not HTTP got %q", raw)
	}
	raw = rawRequest(t, url, "GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 400") || !strings.Contains(raw, "not a URL path") {
		t.Errorf("a request target that is not a path got %q", raw)
	}
}

// TestFastRouteAndContexts: a request the fast route takes never reaches
// the handler, and one it leaves does; a handler's context ends when it
// returns, as with net/http.
func TestFastRouteAndContexts(t *testing.T) {
	var handlerCtx context.Context
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlerCtx = r.Context()
		io.WriteString(w, "handler")
	})
	fast := func(ctx *fasthttp.RequestCtx) bool {
		if !bytes.Equal(ctx.Path(), []byte("/fast")) {
			return false
		}
		w := NewResponseWriter(ctx)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "fast")
		w.Finish()
		return true
	}
	url, _ := start(t, h, fast)
	if resp, body := do(t, "POST", url+"/fast", "x"); resp.StatusCode != 202 || body != "fast" {
		t.Errorf("fast: %d %q", resp.StatusCode, body)
	}
	if handlerCtx != nil {
		t.Error("the handler ran for a request the fast route took")
	}
	if _, body := do(t, "POST", url+"/slow", "x"); body != "handler" {
		t.Errorf("slow: %q", body)
	}
	if handlerCtx == nil || handlerCtx.Err() == nil {
		t.Error("the handler's context did not end with the request")
	}
}

// TestShutdownFinishesRequests: a request in progress when Shutdown
// starts is answered; then the listener is closed.
func TestShutdownFinishesRequests(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Handler: h, BodyLimit: func([]byte) int { return 1 << 20 }, ReadTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	go s.Serve(ln)
	url := "http://" + ln.Addr().String()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if body := <-got; body != "finished" {
		t.Errorf("the request in progress got %q", body)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("a request after shutdown was served")
	}
}
