package webhooks_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/webhooks"
)

// The Standard Webhooks test vector, shared by the reference libraries.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// A well-formed signature that does not match the vector.
	specWrongSignature = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

func mustSigner(t testing.TB, secrets ...string) *webhooks.Signer {
	t.Helper()
	s, err := webhooks.NewSigner(secrets...)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func mustVerifier(t testing.TB, secrets ...string) *webhooks.Verifier {
	t.Helper()
	v, err := webhooks.NewVerifier(secrets...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func mustSecret(t testing.TB) string {
	t.Helper()
	s, err := webhooks.NewSecret()
	if err != nil {
		t.Fatalf("NewSecret: %v", err)
	}
	return s
}

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(webhooks.HeaderID, id)
	h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(webhooks.HeaderSignature, sig)
	return h
}

func TestSpecVector(t *testing.T) {
	s := mustSigner(t, specSecret)
	got := s.Sign(specID, time.Unix(specTimestamp, 0), []byte(specBody))
	if got != specSignature {
		t.Fatalf("Sign = %q, want %q", got, specSignature)
	}
	// Sub-second parts of the timestamp do not count.
	if got := s.Sign(specID, time.Unix(specTimestamp, 999_999_999), []byte(specBody)); got != specSignature {
		t.Errorf("Sign with nanoseconds = %q, want %q", got, specSignature)
	}

	v := mustVerifier(t, specSecret)
	h := headers(specID, specTimestamp, specSignature)
	if err := v.VerifyIgnoringTimestamp([]byte(specBody), h); err != nil {
		t.Errorf("VerifyIgnoringTimestamp: %v", err)
	}
	// The vector is from 2021: far outside the tolerance.
	if err := v.Verify([]byte(specBody), h); !errors.Is(err, webhooks.ErrTimestampTooOld) {
		t.Errorf("Verify = %v, want ErrTimestampTooOld", err)
	}
}

func TestSetHeaders(t *testing.T) {
	s := mustSigner(t, specSecret)
	h := http.Header{}
	s.SetHeaders(h, specID, time.Unix(specTimestamp, 0), []byte(specBody))
	want := map[string]string{
		"Webhook-Id":        specID,
		"Webhook-Timestamp": strconv.Itoa(specTimestamp),
		"Webhook-Signature": specSignature,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if len(h) != 3 {
		t.Errorf("SetHeaders set %d headers, want 3: %v", len(h), h)
	}
}

func TestVerifySignatureHeader(t *testing.T) {
	v := mustVerifier(t, specSecret)
	valid := strings.TrimPrefix(specSignature, "v1,")
	tests := []struct {
		name string
		sig  string
		ok   bool
	}{
		{"valid", specSignature, true},
		{"invalid signature", specWrongSignature, false},
		{"partial v1,", "v1,", false},
		{"version only", "v1", false},
		{"invalid v1, unknown v2, valid v1", specWrongSignature + " v2,abcdef " + specSignature, true},
		{"valid first", specSignature + " " + specWrongSignature, true},
		{"extra spaces and tabs", "  " + specWrongSignature + " \t " + specSignature + "  ", true},
		{"valid bytes under another version", "v2," + valid, false},
		{"v1a is not v1", "v1a," + valid, false},
		{"upper-case version", "V1," + valid, false},
		{"truncated", specSignature[:len(specSignature)-1], false},
		{"trailing garbage", specSignature + "A", false},
		{"missing padding", strings.TrimSuffix(specSignature, "="), false},
		{"url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(specSignature), false},
		{"hex instead of base64", "v1," + fmt.Sprintf("%x", mustDecode(t, valid)), false},
		{"comma inside", "v1," + valid + ",x", false},
		{"only unknown versions", "v0,xyz v2,abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.VerifyIgnoringTimestamp([]byte(specBody), headers(specID, specTimestamp, tt.sig))
			if tt.ok && err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if !tt.ok && !errors.Is(err, webhooks.ErrNoMatchingSignature) {
				t.Fatalf("got %v, want ErrNoMatchingSignature", err)
			}
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyRejectsTampering(t *testing.T) {
	v := mustVerifier(t, specSecret)
	body := []byte(specBody)
	for name, tc := range map[string]struct {
		body []byte
		id   string
		ts   int64
	}{
		"body":            {[]byte(`{"test": 2432232315}`), specID, specTimestamp},
		"body whitespace": {[]byte(`{"test":2432232314}`), specID, specTimestamp},
		"empty body":      {nil, specID, specTimestamp},
		"id":              {body, specID + "x", specTimestamp},
		"timestamp":       {body, specID, specTimestamp + 1},
	} {
		t.Run(name, func(t *testing.T) {
			err := v.VerifyIgnoringTimestamp(tc.body, headers(tc.id, tc.ts, specSignature))
			if !errors.Is(err, webhooks.ErrNoMatchingSignature) {
				t.Fatalf("got %v, want ErrNoMatchingSignature", err)
			}
		})
	}
	other := mustVerifier(t, mustSecret(t))
	if err := other.VerifyIgnoringTimestamp(body, headers(specID, specTimestamp, specSignature)); !errors.Is(err, webhooks.ErrNoMatchingSignature) {
		t.Errorf("another secret: got %v, want ErrNoMatchingSignature", err)
	}
}

func TestVerifyMissingHeaders(t *testing.T) {
	v := mustVerifier(t, specSecret)
	for _, name := range []string{webhooks.HeaderID, webhooks.HeaderTimestamp, webhooks.HeaderSignature} {
		for _, how := range []string{"absent", "empty"} {
			t.Run(name+" "+how, func(t *testing.T) {
				h := headers(specID, specTimestamp, specSignature)
				if how == "absent" {
					h.Del(name)
				} else {
					h.Set(name, "")
				}
				err := v.VerifyIgnoringTimestamp([]byte(specBody), h)
				if !errors.Is(err, webhooks.ErrMissingHeaders) {
					t.Fatalf("got %v, want ErrMissingHeaders", err)
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name the missing header %s", err, name)
				}
			})
		}
	}
	if err := v.Verify(nil, nil); !errors.Is(err, webhooks.ErrMissingHeaders) {
		t.Errorf("nil header: got %v, want ErrMissingHeaders", err)
	}
}

// Header maps built from lower-case names (not canonicalized by net/http)
// are still found.
func TestVerifyNonCanonicalHeaderNames(t *testing.T) {
	v := mustVerifier(t, specSecret)
	h := http.Header{
		"webhook-id":        {specID},
		"webhook-timestamp": {strconv.Itoa(specTimestamp)},
		"webhook-signature": {specSignature},
	}
	if err := v.VerifyIgnoringTimestamp([]byte(specBody), h); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyTimestamp(t *testing.T) {
	secret := mustSecret(t)
	s := mustSigner(t, secret)
	body := []byte(`{"type":"order.paid"}`)
	now := time.Now()

	check := func(t *testing.T, v *webhooks.Verifier, ts time.Time, want error) {
		t.Helper()
		h := http.Header{}
		s.SetHeaders(h, "evt_1", ts, body)
		err := v.Verify(body, h)
		if want == nil && err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("Verify = %v, want %v", err, want)
		}
		// Without the tolerance check the signature itself is fine.
		if err := v.VerifyIgnoringTimestamp(body, h); err != nil {
			t.Fatalf("VerifyIgnoringTimestamp: %v", err)
		}
	}

	v := mustVerifier(t, secret)
	if v.Tolerance != webhooks.DefaultTolerance || webhooks.DefaultTolerance != 5*time.Minute {
		t.Fatalf("Tolerance = %v, want 5m", v.Tolerance)
	}
	// Margins of a minute keep these away from the edges of the window.
	t.Run("now", func(t *testing.T) { check(t, v, now, nil) })
	t.Run("4m ago", func(t *testing.T) { check(t, v, now.Add(-4*time.Minute), nil) })
	t.Run("4m ahead", func(t *testing.T) { check(t, v, now.Add(4*time.Minute), nil) })
	t.Run("6m ago", func(t *testing.T) { check(t, v, now.Add(-6*time.Minute), webhooks.ErrTimestampTooOld) })
	t.Run("6m ahead", func(t *testing.T) { check(t, v, now.Add(6*time.Minute), webhooks.ErrTimestampTooNew) })
	t.Run("epoch", func(t *testing.T) { check(t, v, time.Unix(0, 0), webhooks.ErrTimestampTooOld) })
	t.Run("year 9999", func(t *testing.T) {
		check(t, v, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), webhooks.ErrTimestampTooNew)
	})

	narrow := mustVerifier(t, secret)
	narrow.Tolerance = time.Minute
	t.Run("custom tolerance", func(t *testing.T) { check(t, narrow, now.Add(-2*time.Minute), webhooks.ErrTimestampTooOld) })
	t.Run("custom tolerance ahead", func(t *testing.T) { check(t, narrow, now.Add(2*time.Minute), webhooks.ErrTimestampTooNew) })

	zero := mustVerifier(t, secret)
	zero.Tolerance = 0 // means the default
	t.Run("zero tolerance", func(t *testing.T) { check(t, zero, now.Add(-4*time.Minute), nil) })
}

func TestVerifyInvalidTimestamp(t *testing.T) {
	v := mustVerifier(t, specSecret)
	for _, ts := range []string{
		"abc",
		"1614265330.5",
		"1614265330.0",
		"1.6142653e9",
		"-1614265330",
		"+1614265330",
		" 1614265330",
		"1614265330 ",
		"0x60380e72",
		"99999999999999999999",                // overflows int64
		strings.Repeat("1", 100),              // absurdly long
		"2021-02-25T15:02:10Z",                // not Unix seconds
		"١٦١٤٢٦٥٣٣٠",                          // non-ASCII digits
		"1614265330\x00",                      // trailing NUL
		"1614265330" + strings.Repeat(" ", 3), // trailing spaces
	} {
		h := headers(specID, 0, specSignature)
		h.Set(webhooks.HeaderTimestamp, ts)
		for name, verify := range map[string]func([]byte, http.Header) error{
			"Verify":                  v.Verify,
			"VerifyIgnoringTimestamp": v.VerifyIgnoringTimestamp,
		} {
			if err := verify([]byte(specBody), h); !errors.Is(err, webhooks.ErrInvalidTimestamp) {
				t.Errorf("%s with timestamp %q = %v, want ErrInvalidTimestamp", name, ts, err)
			}
		}
	}
	// The largest int64 is a valid number, just far in the future.
	h := headers(specID, 0, specSignature)
	h.Set(webhooks.HeaderTimestamp, "9223372036854775807")
	if err := v.Verify([]byte(specBody), h); !errors.Is(err, webhooks.ErrTimestampTooNew) {
		t.Errorf("max int64 timestamp: got %v, want ErrTimestampTooNew", err)
	}
}

func TestDecodeSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, n)) }
	valid := []struct {
		name, secret string
		n            int
	}{
		{"spec vector", specSecret, 24},
		{"without prefix", strings.TrimPrefix(specSecret, "whsec_"), 24},
		{"surrounding white space", " " + specSecret + "\n", 24},
		{"24 bytes", "whsec_" + b64(24), 24},
		{"32 bytes", "whsec_" + b64(32), 32},
		{"64 bytes", "whsec_" + b64(64), 64},
	}
	for _, tt := range valid {
		key, err := webhooks.DecodeSecret(tt.secret)
		if err != nil || len(key) != tt.n {
			t.Errorf("%s: DecodeSecret(%q) = %d bytes, %v; want %d bytes", tt.name, tt.secret, len(key), err, tt.n)
		}
	}

	invalid := []struct {
		name, secret, mention string
	}{
		{"empty", "", "empty"},
		{"prefix only", "whsec_", "empty"},
		{"white space only", "  \t", "empty"},
		{"not base64", "whsec_not*base64!", "base64"},
		{"missing padding", "whsec_" + strings.TrimRight(b64(32), "="), "base64"},
		{"url alphabet", "whsec_" + strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xFB, 0xFF}, 16))), "base64"},
		{"inner space", "whsec_MfKQ9r8GKYqr TwjUPD8ILPZIo2LaLaSw", "base64"},
		{"too short", "whsec_" + b64(16), "16 bytes"},
		{"23 bytes", "whsec_" + b64(23), "23 bytes"},
		{"too long", "whsec_" + b64(65), "65 bytes"},
	}
	for _, tt := range invalid {
		_, err := webhooks.DecodeSecret(tt.secret)
		if !errors.Is(err, webhooks.ErrInvalidSecret) {
			t.Errorf("%s: DecodeSecret(%q) = %v, want ErrInvalidSecret", tt.name, tt.secret, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: error %q should mention %q", tt.name, err, tt.mention)
		}
		if _, err := webhooks.NewSigner(tt.secret); !errors.Is(err, webhooks.ErrInvalidSecret) {
			t.Errorf("%s: NewSigner = %v, want ErrInvalidSecret", tt.name, err)
		}
		if _, err := webhooks.NewVerifier(specSecret, tt.secret); !errors.Is(err, webhooks.ErrInvalidSecret) || !strings.Contains(err.Error(), "secret 2 of 2") {
			t.Errorf("%s: NewVerifier = %v, want ErrInvalidSecret naming secret 2 of 2", tt.name, err)
		}
	}

	if _, err := webhooks.NewSigner(); !errors.Is(err, webhooks.ErrInvalidSecret) {
		t.Errorf("NewSigner() = %v, want ErrInvalidSecret", err)
	}
	if _, err := webhooks.NewVerifier(); !errors.Is(err, webhooks.ErrInvalidSecret) {
		t.Errorf("NewVerifier() = %v, want ErrInvalidSecret", err)
	}
}

func TestNewSecret(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	if a == b {
		t.Fatal("two secrets are equal")
	}
	for _, s := range []string{a, b} {
		if !strings.HasPrefix(s, "whsec_") {
			t.Errorf("secret %q lacks the whsec_ prefix", s)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(key) != 32 {
			t.Errorf("secret %q: %d bytes, %v; want 32 bytes of standard base64", s, len(key), err)
		}
	}
}

func TestRotation(t *testing.T) {
	oldSecret, newSecret, unrelated := mustSecret(t), mustSecret(t), mustSecret(t)
	body := []byte(`{"id":"evt_1","type":"order.paid","data":{}}`)
	ts := time.Now()

	both := mustSigner(t, oldSecret, newSecret).Sign("evt_1", ts, body)
	entries := strings.Split(both, " ")
	if len(entries) != 2 {
		t.Fatalf("Sign with two secrets = %q, want two entries", both)
	}
	// One entry per secret, in the given order.
	if want := mustSigner(t, oldSecret).Sign("evt_1", ts, body); entries[0] != want {
		t.Errorf("first entry = %q, want the old secret's %q", entries[0], want)
	}
	if want := mustSigner(t, newSecret).Sign("evt_1", ts, body); entries[1] != want {
		t.Errorf("second entry = %q, want the new secret's %q", entries[1], want)
	}

	h := headers("evt_1", ts.Unix(), both)
	for name, secrets := range map[string][]string{
		"old only":          {oldSecret},
		"new only":          {newSecret},
		"both":              {oldSecret, newSecret},
		"unrelated and new": {unrelated, newSecret},
	} {
		if err := mustVerifier(t, secrets...).Verify(body, h); err != nil {
			t.Errorf("verifier with %s: %v", name, err)
		}
	}
	if err := mustVerifier(t, unrelated).Verify(body, h); !errors.Is(err, webhooks.ErrNoMatchingSignature) {
		t.Errorf("unrelated secret: got %v, want ErrNoMatchingSignature", err)
	}

	// A receiver that already knows both secrets accepts a sender that still
	// signs with only one of them.
	h = headers("evt_1", ts.Unix(), mustSigner(t, oldSecret).Sign("evt_1", ts, body))
	if err := mustVerifier(t, newSecret, oldSecret).Verify(body, h); err != nil {
		t.Errorf("two-secret verifier, old-only sender: %v", err)
	}
}

// randomSecret returns a secret of 24 to 64 random bytes, the whole range
// the spec allows.
func randomSecret(r *rand.Rand) string {
	key := make([]byte, 24+r.IntN(41))
	for i := range key {
		key[i] = byte(r.Uint32())
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

func randomBody(r *rand.Rand) []byte {
	b := make([]byte, r.IntN(2048))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randomID(r *rand.Rand) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	b := []byte("evt_")
	for range 26 {
		b = append(b, alphabet[r.IntN(len(alphabet))])
	}
	return string(b)
}

// The reference Go library and this package must agree in both directions.
func TestCrossCheckStandardWebhooks(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed>>1))

	for i := range 200 {
		secret, body, id := randomSecret(r), randomBody(r), randomID(r)
		// Spread timestamps over the tolerance window on both sides.
		ts := time.Now().Add(time.Duration(r.IntN(480)-240) * time.Second)

		ref, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatalf("reference NewWebhook(%q): %v", secret, err)
		}
		ours := mustSigner(t, secret)
		verifier := mustVerifier(t, secret)

		// Ours signs, the reference verifies.
		h := http.Header{}
		ours.SetHeaders(h, id, ts, body)
		if err := ref.Verify(body, h); err != nil {
			t.Fatalf("case %d: reference rejects our signature %q: %v", i, h.Get(webhooks.HeaderSignature), err)
		}

		// The reference signs, ours verifies.
		refSig, err := ref.Sign(id, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		if refSig != h.Get(webhooks.HeaderSignature) {
			t.Fatalf("case %d: signatures differ: reference %q, ours %q", i, refSig, h.Get(webhooks.HeaderSignature))
		}
		rh := http.Header{}
		rh.Set(standardwebhooks.HeaderWebhookID, id)
		rh.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		rh.Set(standardwebhooks.HeaderWebhookSignature, refSig)
		if err := verifier.Verify(body, rh); err != nil {
			t.Fatalf("case %d: we reject the reference signature %q: %v", i, refSig, err)
		}

		// Both reject a flipped body bit.
		if len(body) > 0 {
			bad := bytes.Clone(body)
			bad[r.IntN(len(bad))] ^= 1 << r.IntN(8)
			if err := ref.Verify(bad, h); err == nil {
				t.Fatalf("case %d: reference accepts a tampered body", i)
			}
			if err := verifier.Verify(bad, rh); !errors.Is(err, webhooks.ErrNoMatchingSignature) {
				t.Fatalf("case %d: tampered body: got %v, want ErrNoMatchingSignature", i, err)
			}
		}
	}
}

// During a rotation the reference library, knowing either secret, accepts
// our two-signature header.
func TestCrossCheckRotation(t *testing.T) {
	oldSecret, newSecret := mustSecret(t), mustSecret(t)
	body := []byte(`{"type":"invoice.created"}`)
	h := http.Header{}
	mustSigner(t, oldSecret, newSecret).SetHeaders(h, "evt_2", time.Now(), body)
	for _, secret := range []string{oldSecret, newSecret} {
		ref, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := ref.Verify(body, h); err != nil {
			t.Errorf("reference rejects %q: %v", h.Get(webhooks.HeaderSignature), err)
		}
	}
}

// Signer and Verifier share HMAC state through pools; concurrent use must
// still give the right answers (run with -race).
func TestConcurrentUse(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	s := mustSigner(t, a, b)
	v := mustVerifier(t, b)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("evt_%d_%d", g, i)
				body := []byte(strings.Repeat("x", i))
				h := http.Header{}
				s.SetHeaders(h, id, time.Now(), body)
				if err := v.Verify(body, h); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestZeroValues(t *testing.T) {
	var s webhooks.Signer
	if got := s.Sign("evt_1", time.Now(), nil); got != "" {
		t.Errorf("zero Signer signs %q, want empty", got)
	}
	var v webhooks.Verifier
	err := v.VerifyIgnoringTimestamp([]byte(specBody), headers(specID, specTimestamp, specSignature))
	if !errors.Is(err, webhooks.ErrNoMatchingSignature) {
		t.Errorf("zero Verifier: got %v, want ErrNoMatchingSignature", err)
	}
}

func BenchmarkSign(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"}`), 1024/9) // about 1 KiB, a typical event
	ts := time.Unix(specTimestamp, 0)
	for _, n := range []int{1, 2} {
		secrets := make([]string, n)
		for i := range secrets {
			secrets[i] = mustSecret(b)
		}
		s := mustSigner(b, secrets...)
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				s.Sign(specID, ts, body)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"}`), 1024/9)
	secret := mustSecret(b)
	h := http.Header{}
	mustSigner(b, secret).SetHeaders(h, specID, time.Now(), body)
	v := mustVerifier(b, secret)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := v.Verify(body, h); err != nil {
			b.Fatal(err)
		}
	}
}
