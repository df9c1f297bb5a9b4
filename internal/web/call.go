package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	gopath "path"
	"strings"
)

// apiError is a problem+json answer of the API.
type apiError struct {
	Status int          `json:"status"`
	Title  string       `json:"title"`
	Detail string       `json:"detail"`
	Errors []fieldError `json:"errors"`
}

type fieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.Detail)
	if b.Len() == 0 {
		b.WriteString(e.Title)
	}
	for _, f := range e.Errors {
		fmt.Fprintf(&b, "; %s %s", f.Field, f.Detail)
	}
	return b.String()
}

// recorder is the smallest http.ResponseWriter: the API answers into it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// call sends one request to the API in process, as the session's key, and
// decodes its JSON answer into out. An answer of 400 or more comes back as
// an *apiError.
func (s *Server) call(r *http.Request, sess *session, method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return err
	}
	// An id of the page's path such as ".." or "a/../b" (%2F) would make
	// another API path, which the API answers with a redirect: a page would
	// fail to decode it and a form would report a success that did not
	// happen. No real id makes an unclean path, so it is not found.
	if p := req.URL.Path; gopath.Clean(p) != p {
		return &apiError{Status: http.StatusNotFound, Title: "Not found", Detail: "There is nothing with that id."}
	}
	req.Header.Set("Authorization", "Bearer "+sess.Key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = r.RemoteAddr
	rec := &recorder{header: http.Header{}}
	s.cfg.API.ServeHTTP(rec, req)
	if rec.status >= 400 {
		aerr := &apiError{Status: rec.status}
		if err := json.Unmarshal(rec.body.Bytes(), aerr); err != nil {
			aerr.Detail = strings.TrimSpace(rec.body.String())
		}
		aerr.Status = rec.status
		return aerr
	}
	if out == nil || rec.body.Len() == 0 {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// list is the API's answer for a list.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// tenantAPI is the API's path of tenant t.
func tenantAPI(t string) string { return "/v1/tenants/" + url.PathEscape(t) }

// allPages reads every page of a list endpoint; query may be empty.
func allPages[T any](s *Server, r *http.Request, sess *session, path string, query url.Values) ([]T, error) {
	var all []T
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("limit", "500")
	for {
		var lst list[T]
		if err := s.call(r, sess, http.MethodGet, path+"?"+q.Encode(), nil, &lst); err != nil {
			return nil, err
		}
		all = append(all, lst.Data...)
		if lst.NextCursor == nil || *lst.NextCursor == "" || len(lst.Data) == 0 {
			return all, nil
		}
		q.Set("cursor", *lst.NextCursor)
	}
}
