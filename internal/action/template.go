// Package action builds the HTTP request of an action channel from an
// event. An action's URL, header values and the string values of its JSON
// body may hold expressions in {{ … }}; they are expr-lang expressions over
// the event (id, type, source, occurred_at, data) and a few helpers
// (summary(), customer(), coalesce(), money(), urlencode()). Headers and the
// URL may also read secrets.<name>; the body may not, because a body can come
// back in a response that the delivery log keeps. Templates are compiled when
// a channel is saved, so mistakes are answered there, not at 3 a.m.
package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/exprguard"
)

// Bounds of a template, so no saved action is expensive to render.
const (
	maxExprLength = 2048
	maxNodes      = 400
	// MaxBody bounds a template body and a rendered one.
	MaxBody = 256 << 10
)

// Methods an action may use.
var methods = []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodGet}

// Template is a compiled action: ready to render a request per event.
type Template struct {
	method  string
	url     text
	headers map[string]text
	body    node // nil: no body
	secrets map[string]string
}

// Request is a rendered action request.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Compile checks and compiles channel URL rawURL and action a. Every
// problem is reported with its field (url, action.method, action.headers.X,
// action.body) in a *herald.ValidationError.
func Compile(rawURL string, a *herald.Action) (*Template, error) {
	verr := &herald.ValidationError{}
	t := &Template{method: strings.ToUpper(a.Method), headers: map[string]text{}, secrets: a.Secrets}
	if t.method == "" {
		t.method = http.MethodPost
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == t.method
	}
	if !ok {
		verr.Add("action.method", "%q is not allowed; use one of %s", a.Method, strings.Join(methods, ", "))
	}
	var err error
	if t.url, err = compileText(rawURL, true, a.Secrets); err != nil {
		verr.Add("url", "%v", err)
	} else if err := checkURLHost(rawURL); err != nil {
		verr.Add("url", "%v", err)
	}
	for k, v := range a.Headers {
		if t.headers[k], err = compileText(v, true, a.Secrets); err != nil {
			verr.Add("action.headers."+k, "%v", err)
		}
	}
	if len(bytes.TrimSpace(a.Body)) > 0 {
		if len(a.Body) > MaxBody {
			verr.Add("action.body", "is %d bytes; at most %d are allowed", len(a.Body), MaxBody)
		} else if t.body, err = compileBody(a.Body); err != nil {
			verr.Add("action.body", "%v", err)
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// checkURLHost makes sure expressions only appear after the host, so the
// address a channel was checked against when saved is the one it requests
// (and no secret can choose it).
func checkURLHost(raw string) error {
	i := strings.Index(raw, "{{")
	if i < 0 {
		return nil
	}
	prefix := raw[:i]
	scheme, rest, ok := strings.Cut(prefix, "://")
	if !ok || (scheme != "http" && scheme != "https") || !strings.ContainsAny(rest, "/?#") {
		return errors.New("expressions may appear only in the path or query, after the host: e.g. https://api.example.com/items/{{ data.id }}")
	}
	return nil
}

// StaticURL is the URL with each expression replaced by a placeholder, for
// checking the target address when the channel is saved.
func StaticURL(raw string) string {
	var b strings.Builder
	for {
		i := strings.Index(raw, "{{")
		if i < 0 {
			b.WriteString(raw)
			return b.String()
		}
		j := strings.Index(raw[i:], "}}")
		if j < 0 {
			b.WriteString(raw)
			return b.String()
		}
		b.WriteString(raw[:i])
		b.WriteString("x")
		raw = raw[i+j+2:]
	}
}

// Render builds the request for event e. An error says which field failed
// and why, with secret values removed; it is a permanent failure of the
// delivery, since rendering again would fail again.
func (t *Template) Render(e *herald.Event) (req *Request, err error) {
	defer func() {
		// expr recovers its own panics; this guards the helpers.
		if r := recover(); r != nil {
			req, err = nil, fmt.Errorf("action template panicked: %v", r)
		}
	}()
	env, err := newEnv(e)
	if err != nil {
		return nil, err
	}
	req = &Request{Method: t.method, Header: http.Header{}}
	withSecrets := env.withSecrets(t.secrets)
	if req.URL, err = t.url.render(withSecrets); err != nil {
		return nil, t.redact(fmt.Errorf("url: %w", err))
	}
	if _, err := url.ParseRequestURI(req.URL); err != nil {
		return nil, t.redact(fmt.Errorf("url: the rendered URL does not parse: %w", err))
	}
	names := make([]string, 0, len(t.headers))
	for k := range t.headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, err := t.headers[k].render(withSecrets)
		if err != nil {
			return nil, t.redact(fmt.Errorf("action.headers.%s: %w", k, err))
		}
		// Any control byte but a tab is refused by net/http when sending,
		// which would look like a connection error and be retried.
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return nil, fmt.Errorf("action.headers.%s: the rendered value holds a line break or another control character", k)
		}
		req.Header.Set(k, v)
	}
	if t.body != nil {
		var b bytes.Buffer
		if _, err := t.body.render(&b, env.vars, ""); err != nil {
			return nil, t.redact(fmt.Errorf("action.body: %w", err))
		}
		if b.Len() > MaxBody {
			return nil, fmt.Errorf("action.body: the rendered body is %d bytes; at most %d are sent", b.Len(), MaxBody)
		}
		req.Body = b.Bytes()
	}
	return req, nil
}

// redact removes the values of the template's secrets from an error.
func (t *Template) redact(err error) error {
	return errors.New(Redact(err.Error(), t.secrets))
}

// Redact replaces every secret value in s by herald.SecretMask. It is
// applied to errors and response bodies before they are logged or stored.
func Redact(s string, secrets map[string]string) string {
	for _, v := range secrets {
		if len(v) >= 4 { // a shorter "secret" would mask ordinary text
			s = strings.ReplaceAll(s, v, herald.SecretMask)
		}
	}
	return s
}

// text is a string with {{ … }} parts: literals and programs in turn.
type text struct {
	parts []part
}

type part struct {
	lit  string
	prog *vm.Program
	src  string
}

// single is the program when the text is exactly one expression.
func (t text) single() *vm.Program {
	if len(t.parts) == 1 && t.parts[0].prog != nil {
		return t.parts[0].prog
	}
	return nil
}

func (t text) render(vars map[string]any) (string, error) {
	if len(t.parts) == 1 && t.parts[0].prog == nil {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := run(p, vars)
		if err != nil {
			return "", err
		}
		s, err := toText(v)
		if err != nil {
			return "", fmt.Errorf("{{ %s }}: %w", p.src, err)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func run(p part, vars map[string]any) (any, error) {
	v, err := expr.Run(p.prog, vars)
	if err != nil {
		return nil, fmt.Errorf("{{ %s }}: %v", p.src, firstLine(err.Error()))
	}
	if exprguard.Size(v, MaxBody) > MaxBody {
		return nil, fmt.Errorf("{{ %s }}: %w", p.src, &exprguard.TooBigError{Limit: MaxBody})
	}
	return v, nil
}

// firstLine drops expr's source excerpt, which repeats the expression.
func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// compileText parses s into literals and expressions; secrets says whether
// secrets.<name> may be read, and names the ones that exist.
func compileText(s string, allowSecrets bool, secrets map[string]string) (text, error) {
	var t text
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" || len(t.parts) == 0 {
				t.parts = append(t.parts, part{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return text{}, fmt.Errorf("%q: an expression opened with {{ is not closed with }}", excerpt(rest[i:]))
		}
		src := strings.TrimSpace(rest[i+2 : i+2+j])
		prog, err := compileExpr(src, allowSecrets, secrets)
		if err != nil {
			return text{}, err
		}
		t.parts = append(t.parts, part{prog: prog, src: src})
		rest = rest[i+2+j+2:]
	}
}

func excerpt(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// compileExpr compiles one expression with the helpers' signatures.
func compileExpr(src string, allowSecrets bool, secrets map[string]string) (*vm.Program, error) {
	if src == "" {
		return nil, errors.New("{{ }} is empty; put an expression inside, e.g. {{ data.order.id }}")
	}
	if len(src) > maxExprLength {
		return nil, fmt.Errorf("{{ %s }}: is %d characters long; at most %d are allowed", excerpt(src), len(src), maxExprLength)
	}
	env := compileEnv
	if allowSecrets {
		env = compileEnvSecrets
	}
	opts := append([]expr.Option{expr.Env(env), expr.MaxNodes(maxNodes)}, exprguard.Options(MaxBody)...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		if !allowSecrets && strings.Contains(err.Error(), "unknown name secrets") {
			return nil, fmt.Errorf("{{ %s }}: secrets may be used in headers and the URL only, never in the body (a body can come back in a response the delivery log keeps)", src)
		}
		return nil, fmt.Errorf("{{ %s }}: does not compile: %s (names: id, type, source, occurred_at, data.<field>, summary(), customer(), coalesce(…), money(amount, currency), urlencode(s)%s)",
			src, firstLine(err.Error()), map[bool]string{true: ", secrets.<name>"}[allowSecrets])
	}
	if allowSecrets {
		node := prog.Node()
		sv := &secretRefs{known: secrets}
		ast.Walk(&node, sv)
		if sv.err != nil {
			return nil, fmt.Errorf("{{ %s }}: %w", src, sv.err)
		}
	}
	return prog, nil
}

// secretRefs checks that every secrets.<name> read names a secret.
type secretRefs struct {
	known map[string]string
	err   error
}

func (v *secretRefs) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok || v.err != nil {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "secrets" {
		return
	}
	name, ok := m.Property.(*ast.StringNode)
	if !ok {
		v.err = errors.New("read a secret by its name, as secrets.token")
		return
	}
	if _, found := v.known[name.Value]; !found {
		names := make([]string, 0, len(v.known))
		for k := range v.known {
			names = append(names, k)
		}
		sort.Strings(names)
		have := "there are none yet"
		if len(names) > 0 {
			have = "there are: " + strings.Join(names, ", ")
		}
		v.err = fmt.Errorf("there is no secret %q; add it to action.secrets (%s)", name.Value, have)
	}
}

// toText is how a value reads inside a string.
func toText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case time.Duration:
		return x.String(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("the value (%T) cannot be written as text", v)
	}
	return string(b), nil
}
