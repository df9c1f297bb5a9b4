package channel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/action"
	"github.com/valyala/fasthttp"
)

// maxTemplates bounds the compiled-template cache; past it, it starts over.
const maxTemplates = 10_000

// template returns the channel's compiled action, compiling it once per
// definition: the cache key is a hash of everything the template is made
// of (secrets included), so a change is never missed, however close in
// time two changes are.
func (s *Sender) template(c *herald.Channel) (*action.Template, error) {
	def, err := json.Marshal(struct {
		URL, Method string
		Headers     map[string]string
		Body        json.RawMessage
		Secrets     map[string]string
	}{c.URL, c.Action.Method, c.Action.Headers, c.Action.Body, c.Action.Secrets})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(def)
	key := c.ID + "@" + hex.EncodeToString(sum[:])
	s.tmu.Lock()
	t, ok := s.templates[key]
	s.tmu.Unlock()
	if ok {
		return t, nil
	}
	t, err = action.Compile(c.URL, c.Action)
	if err != nil {
		return nil, err
	}
	s.tmu.Lock()
	if s.templates == nil || len(s.templates) >= maxTemplates {
		s.templates = map[string]*action.Template{}
	}
	s.templates[key] = t
	s.tmu.Unlock()
	return t, nil
}

// sendAction renders an action channel's request for e and sends it with
// the same guarded client as webhooks. No Standard Webhooks headers are
// added: the body is not the event, and the targets (CRMs, chat) neither
// expect nor check them. Secret values are removed from whatever the
// attempt records: the error and the response body.
func (s *Sender) sendAction(ctx context.Context, c *herald.Channel, e *herald.Event) Result {
	if c.Action == nil {
		return Result{ErrorClass: herald.ErrClassTemplate, Error: "action channel has no template"}
	}
	secrets := c.Action.Secrets
	t, err := s.template(c)
	if err != nil {
		return Result{ErrorClass: herald.ErrClassTemplate, Error: action.Redact("action template: "+err.Error(), secrets)}
	}
	r, err := t.Render(e)
	if err != nil {
		return Result{ErrorClass: herald.ErrClassTemplate, Error: "action template: " + err.Error()}
	}
	req := newRequest(r.Method, r.URL, c.Headers)
	defer fasthttp.ReleaseRequest(req)
	for k, vs := range r.Header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.Body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(r.Body)
	}
	req.Header.SetUserAgent(s.userAgent)
	res := s.client.do(ctx, req, c.Timeout())
	res.Body = action.Redact(res.Body, secrets)
	res.Error = action.Redact(res.Error, secrets)
	return res
}
