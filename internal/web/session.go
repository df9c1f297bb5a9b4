package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	sessionCookie = "herald_session"
	signinCookie  = "herald_signin" // CSRF token of the sign-in form
	sessionTTL    = 12 * time.Hour
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// session is what the sealed cookie holds. The API key stays server-side
// in effect: the cookie is encrypted and authenticated, HttpOnly, and
// every page checks the key against the API, so a revoked key ends its
// sessions at once.
type session struct {
	Key      string `json:"k"`
	Operator bool   `json:"o,omitempty"`
	Tenant   string `json:"t,omitempty"`
	CSRF     string `json:"c"`
	Expires  int64  `json:"e"`
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) seal(sess *session) (string, error) {
	plain, err := json.Marshal(sess)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(sessionCookie))), nil
}

func (s *Server) open(v string) (*session, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errors.New("malformed session")
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(sessionCookie))
	if err != nil {
		return nil, errors.New("session not sealed by this deployment")
	}
	var sess session
	if err := json.Unmarshal(plain, &sess); err != nil {
		return nil, err
	}
	if time.Unix(sess.Expires, 0).Before(s.cfg.Clock.Now()) {
		return nil, errors.New("session expired")
	}
	return &sess, nil
}

// secure says whether cookies get the Secure flag: always, except when
// the dashboard is served over plain HTTP on loopback (a developer's
// machine), where a browser would not send them back.
func secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode,
	})
}

type pageHandler func(w http.ResponseWriter, r *http.Request, sess *session)

// authed runs h for a signed-in user, checking the CSRF token on every
// request that changes something; otherwise it sends them to sign in.
func (s *Server) authed(h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		var sess *session
		if err == nil {
			sess, err = s.open(c.Value)
		}
		if err != nil {
			if r.Method != http.MethodGet {
				http.Error(w, "Your session has ended; sign in again.", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			token := r.Header.Get(csrfHeader)
			if token == "" {
				token = r.PostFormValue(csrfField)
			}
			if subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRF)) != 1 {
				http.Error(w, "This form is missing its security token (CSRF); reload the page and try again.", http.StatusForbidden)
				return
			}
		}
		h(w, r, sess)
	})
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	s.renderSignin(w, r, http.StatusOK, "")
}

func (s *Server) renderSignin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	// Keep the token a browser already holds: another tab, or a request it
	// makes on its own (a favicon sent here to sign in), must not replace
	// the token of the form on screen.
	token := randomToken()
	if c, err := r.Cookie(signinCookie); err == nil && len(c.Value) >= 32 {
		token = c.Value
	}
	setCookie(w, r, signinCookie, token, 3600)
	s.render(w, r, status, "signin", &page{Title: "Sign in", CSRF: token, Error: msg, Data: map[string]string{"Next": safeNext(r.FormValue("next"))}})
}

// signin checks the key against the API and starts a session.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(signinCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue(csrfField))) != 1 {
		http.Error(w, "This form is missing its security token (CSRF); reload the sign-in page and try again.", http.StatusForbidden)
		return
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	if key == "" {
		s.renderSignin(w, r, http.StatusUnprocessableEntity, "Enter an API key: a tenant key (hk_…) or the operator key.")
		return
	}
	var who struct {
		Operator bool   `json:"operator"`
		TenantID string `json:"tenant_id"`
	}
	if err := s.call(r, &session{Key: key}, http.MethodGet, "/v1/whoami", nil, &who); err != nil {
		var aerr *apiError
		if errors.As(err, &aerr) && aerr.Status == http.StatusUnauthorized {
			s.renderSignin(w, r, http.StatusUnauthorized, "That API key is unknown or revoked. Check it, or ask your operator for a new one.")
			return
		}
		s.renderSignin(w, r, http.StatusServiceUnavailable, "Herald could not check the key: "+err.Error())
		return
	}
	sess := &session{Key: key, Operator: who.Operator, Tenant: who.TenantID, CSRF: randomToken(), Expires: s.cfg.Clock.Now().Add(sessionTTL).Unix()}
	v, err := s.seal(sess)
	if err != nil {
		s.renderSignin(w, r, http.StatusInternalServerError, "Herald could not start a session: "+err.Error())
		return
	}
	setCookie(w, r, sessionCookie, v, int(sessionTTL/time.Second))
	setCookie(w, r, signinCookie, "", -1)
	next := safeNext(r.PostFormValue("next"))
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, _ *session) {
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect on this site. Browsers drop tabs
// and newlines from a URL and read a backslash as a slash, so "/\t/evil"
// or "/a/../\evil" (which http.Redirect cleans to "/\evil") would leave
// it: a path with either is refused, as is one that names a host.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') ||
		strings.ContainsFunc(next, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return ""
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return next
}
