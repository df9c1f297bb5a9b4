// Package webhooks signs and verifies webhook requests in the Standard
// Webhooks format (https://www.standardwebhooks.com), the format Herald uses
// for every delivery.
//
// A signed request carries three headers:
//
//	webhook-id:        msg_2Xk3…            the event id; the same on every retry, use it to deduplicate
//	webhook-timestamp: 1614265330           Unix seconds of this attempt
//	webhook-signature: v1,g0hM9SsE+OTP…=    space-separated, one entry per active secret
//
// Each v1 signature is the standard base64 encoding of
// HMAC-SHA256(key, id + "." + timestamp + "." + body), where the key is the
// secret decoded from its "whsec_" + base64 form. While a secret is being
// rotated the sender signs with both the old and the new secret, so a
// receiver that knows either one accepts the request.
//
// Receivers create a [Verifier] once and call [Verifier.Verify] with the raw
// request body, before parsing it: re-encoding the JSON changes the bytes and
// breaks the signature. Senders use a [Signer].
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names of a signed request.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts the printed form of every secret.
const SecretPrefix = "whsec_"

// Limits on the decoded length of a secret, from the Standard Webhooks spec.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// DefaultTolerance is how far a request's timestamp may lie in the past or the
// future before [Verifier.Verify] rejects it.
const DefaultTolerance = 5 * time.Minute

// Errors returned by [Verifier.Verify]; the returned error wraps one of them
// and adds details. Test with [errors.Is].
var (
	ErrMissingHeaders      = errors.New("missing webhook headers")
	ErrInvalidTimestamp    = errors.New("invalid webhook-timestamp")
	ErrTimestampTooOld     = errors.New("webhook timestamp too old")
	ErrTimestampTooNew     = errors.New("webhook timestamp too new")
	ErrNoMatchingSignature = errors.New("no matching webhook signature")
)

// ErrInvalidSecret is wrapped by the errors of [DecodeSecret], [NewSigner] and
// [NewVerifier].
var ErrInvalidSecret = errors.New("invalid webhook secret")

const (
	macSize      = sha256.Size           // 32 bytes
	sigSize      = (macSize + 2) / 3 * 4 // 44: standard base64 of a MAC, padded
	sigEntrySize = len("v1,") + sigSize  // one "v1,<sig>" entry
	maxTimestamp = 19                    // digits of the largest int64
	maxMidSize   = 3 + maxTimestamp      // "." + sign + timestamp + "."
)

// NewSecret returns a new random secret: "whsec_" followed by the standard
// base64 encoding of 32 random bytes.
func NewSecret() (string, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("webhooks: generating a secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:]), nil
}

// DecodeSecret returns the HMAC key of a secret. The secret is "whsec_"
// followed by standard base64 (with padding) of 24 to 64 bytes. Like the
// reference libraries, DecodeSecret also accepts the base64 part alone, and it
// ignores surrounding white space left over from copying.
func DecodeSecret(secret string) ([]byte, error) {
	s := strings.TrimSpace(secret)
	s = strings.TrimPrefix(s, SecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("%w: the secret is empty; copy the whole secret, %q followed by base64, from the channel's settings",
			ErrInvalidSecret, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: the part after %q is not standard base64 (%v); copy the whole secret including any trailing '=' and without line breaks",
			ErrInvalidSecret, SecretPrefix, err)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: the secret decodes to %d bytes but must have %d to %d; generate a new one with NewSecret",
			ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// keyring holds the keys of a Signer or Verifier and computes MACs with them.
// It is safe for concurrent use: each key has a pool of HMAC states, so a
// signature costs no key setup.
type keyring struct {
	keys  [][]byte
	pools []*sync.Pool
}

func newKeyring(secrets []string) (keyring, error) {
	if len(secrets) == 0 {
		return keyring{}, fmt.Errorf("%w: no secret given; pass at least one", ErrInvalidSecret)
	}
	kr := keyring{keys: make([][]byte, len(secrets)), pools: make([]*sync.Pool, len(secrets))}
	for i, s := range secrets {
		key, err := DecodeSecret(s)
		if err != nil {
			if len(secrets) > 1 {
				err = fmt.Errorf("secret %d of %d: %w", i+1, len(secrets), err)
			}
			return keyring{}, err
		}
		kr.keys[i] = key
		kr.pools[i] = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
	}
	return kr, nil
}

// appendContent appends the signed content without the body,
// id + "." + unix + ".", to dst.
func appendContent(dst []byte, id string, unix int64) []byte {
	dst = append(dst, id...)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, unix, 10)
	return append(dst, '.')
}

// mac appends HMAC-SHA256(keys[i], head + body) to dst.
func (kr *keyring) mac(dst []byte, i int, head, body []byte) []byte {
	h := kr.pools[i].Get().(hash.Hash)
	h.Reset()
	h.Write(head)
	h.Write(body)
	dst = h.Sum(dst)
	kr.pools[i].Put(h)
	return dst
}

// A Signer signs outgoing requests with one or more secrets. It is safe for
// concurrent use.
type Signer struct {
	kr keyring
}

// NewSigner returns a Signer for the given secrets, in the order their
// signatures appear in the header. Pass several while an old secret is still
// valid after a rotation.
func NewSigner(secrets ...string) (*Signer, error) {
	kr, err := newKeyring(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{kr: kr}, nil
}

// Sign returns the value of the webhook-signature header for a request with
// the given id, timestamp (only whole seconds count) and body: "v1,<base64>"
// per secret, separated by spaces.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	n := len(s.kr.keys)
	if n == 0 {
		return ""
	}
	// One buffer holds the head of the content and, after it, the raw MAC.
	buf := make([]byte, 0, len(id)+maxMidSize+macSize)
	head := appendContent(buf, id, ts.Unix())
	var b strings.Builder
	b.Grow(n*sigEntrySize + n - 1)
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		sum := s.kr.mac(head[len(head):], i, head, body)
		var enc [sigSize]byte
		base64.StdEncoding.Encode(enc[:], sum)
		b.WriteString("v1,")
		b.Write(enc[:])
	}
	return b.String()
}

// SetHeaders sets the webhook-id, webhook-timestamp and webhook-signature
// headers of h for a request with the given id, timestamp and body.
func (s *Signer) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
}

// A Verifier checks incoming requests against one or more secrets. It is safe
// for concurrent use as long as Tolerance is not changed meanwhile.
type Verifier struct {
	kr keyring

	// Tolerance is how far the timestamp may lie in the past or the future.
	// NewVerifier sets it to DefaultTolerance; zero also means
	// DefaultTolerance.
	Tolerance time.Duration
}

// NewVerifier returns a Verifier that accepts a request signed with any of
// the given secrets. Pass both the old and the new secret while a rotation is
// in progress.
func NewVerifier(secrets ...string) (*Verifier, error) {
	kr, err := newKeyring(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{kr: kr, Tolerance: DefaultTolerance}, nil
}

// Verify checks that h carries the three webhook headers, that the timestamp
// is within the tolerance of the current time, and that at least one v1
// signature matches the raw body for one of the secrets. Signatures of other
// versions are ignored. A nil error means the request is authentic; the
// receiver should still deduplicate on the webhook-id header.
func (v *Verifier) Verify(body []byte, h http.Header) error {
	return v.verify(body, h, true)
}

// VerifyIgnoringTimestamp is Verify without the tolerance check, for replaying
// stored requests. The timestamp must still be present and well formed, since
// it is part of the signed content. Prefer Verify for live traffic: the
// tolerance is what stops an old request from being replayed.
func (v *Verifier) VerifyIgnoringTimestamp(body []byte, h http.Header) error {
	return v.verify(body, h, false)
}

func (v *Verifier) verify(body []byte, h http.Header, checkTime bool) error {
	id, tsText, sigs := header(h, HeaderID), header(h, HeaderTimestamp), header(h, HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		var missing []string
		for _, name := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
			if header(h, name) == "" {
				missing = append(missing, name)
			}
		}
		return fmt.Errorf("%w: %s; the request was not signed, or a proxy dropped the headers",
			ErrMissingHeaders, strings.Join(missing, ", "))
	}
	unix, err := parseTimestamp(tsText)
	if err != nil {
		return err
	}
	if checkTime {
		if err := v.checkTimestamp(unix, time.Now()); err != nil {
			return err
		}
	}
	if len(v.kr.keys) == 0 {
		return fmt.Errorf("%w: the Verifier has no secrets; create it with NewVerifier", ErrNoMatchingSignature)
	}

	// The expected MAC of every key, computed once, after the head of the
	// content in one buffer.
	buf := make([]byte, 0, len(id)+maxMidSize+len(v.kr.keys)*macSize)
	head := appendContent(buf, id, unix)
	want := head[len(head):]
	for i := range v.kr.keys {
		want = v.kr.mac(want, i, head, body)
	}

	seen := 0
	for entry := range strings.FieldsSeq(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		seen++
		// A well-formed v1 signature is exactly 44 characters.
		if len(sig) != sigSize {
			continue
		}
		var in [sigSize]byte
		copy(in[:], sig)
		var got [macSize + 1]byte // decoding needs room for 33 bytes
		n, err := base64.StdEncoding.Decode(got[:], in[:])
		if err != nil || n != macSize {
			continue
		}
		for k := 0; k < len(want); k += macSize {
			if hmac.Equal(got[:macSize], want[k:k+macSize]) {
				return nil
			}
		}
	}
	if seen == 0 {
		return fmt.Errorf("%w: the %s header has no v1 signature; only HMAC-SHA256 (v1) signatures are supported",
			ErrNoMatchingSignature, HeaderSignature)
	}
	return fmt.Errorf("%w: none of %d v1 signature(s) matches any of %d secret(s); check that the receiver uses the channel's current secret and verifies the raw body bytes as received",
		ErrNoMatchingSignature, seen, len(v.kr.keys))
}

// header returns the first value of the named header. It also finds names
// that were stored without canonicalization, as happens when a map of
// lower-case names from another source is converted to an http.Header.
func header(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// parseTimestamp accepts only unsigned decimal seconds, as the spec's
// reference tests require (no sign, no fraction).
func parseTimestamp(s string) (int64, error) {
	if len(s) > maxTimestamp {
		return 0, fmt.Errorf("%w: %.32q… is too long; expected Unix seconds such as 1614265330", ErrInvalidTimestamp, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q is not a whole number of Unix seconds such as 1614265330", ErrInvalidTimestamp, s)
		}
	}
	unix, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is out of range", ErrInvalidTimestamp, s)
	}
	return unix, nil
}

func (v *Verifier) checkTimestamp(unix int64, now time.Time) error {
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	// Whole seconds avoid overflow in time.Duration for absurd timestamps.
	diff := now.Unix() - unix
	limit := int64(tol / time.Second)
	switch {
	case diff > limit:
		return fmt.Errorf("%w: sent %s ago, tolerance is %s; this may be a replay, or the clocks of sender and receiver differ",
			ErrTimestampTooOld, age(diff), tol)
	case -diff > limit:
		return fmt.Errorf("%w: sent %s in the future, tolerance is %s; check that the receiver's clock is in sync",
			ErrTimestampTooNew, age(-diff), tol)
	}
	return nil
}

// age formats a positive number of seconds for an error message.
func age(sec int64) string {
	if sec > int64(100*365*24*time.Hour/time.Second) {
		return "more than 100 years"
	}
	return (time.Duration(sec) * time.Second).String()
}
