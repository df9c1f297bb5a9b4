package herald

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecideStandard(t *testing.T) {
	p := StandardPolicy()
	cases := []struct {
		o      Outcome
		made   int
		status DeliveryStatus
		delay  time.Duration
	}{
		{Outcome{StatusCode: 200}, 1, StatusSucceeded, 0},
		{Outcome{StatusCode: 204}, 8, StatusSucceeded, 0},
		{Outcome{StatusCode: 500}, 1, StatusPending, 5 * time.Second},
		{Outcome{StatusCode: 503}, 2, StatusPending, 5 * time.Minute},
		{Outcome{StatusCode: 302}, 3, StatusPending, 30 * time.Minute},
		{Outcome{StatusCode: 429}, 7, StatusPending, 10 * time.Hour},
		{Outcome{StatusCode: 500}, 8, StatusFailed, 0}, // the eighth attempt was the last
		{Outcome{StatusCode: 400}, 1, StatusFailed, 0},
		{Outcome{StatusCode: 404}, 1, StatusFailed, 0},
		{Outcome{ErrorClass: ErrClassTimeout}, 1, StatusPending, 5 * time.Second},
		{Outcome{ErrorClass: ErrClassConnect}, 1, StatusPending, 5 * time.Second},
		{Outcome{ErrorClass: ErrClassRefused}, 1, StatusFailed, 0},
		{Outcome{StatusCode: 429, RetryAfter: time.Minute}, 1, StatusPending, time.Minute},
		{Outcome{StatusCode: 429, RetryAfter: time.Second}, 1, StatusPending, 5 * time.Second},
		{Outcome{StatusCode: 503, RetryAfter: 48 * time.Hour}, 1, StatusPending, MaxRetryAfter},
	}
	for _, c := range cases {
		v := p.Decide(c.o, c.made)
		if v.Status != c.status || v.Delay != c.delay {
			t.Errorf("%+v after %d: got %s %v, want %s %v", c.o, c.made, v.Status, v.Delay, c.status, c.delay)
		}
	}
	if v := p.Decide(Outcome{StatusCode: 410}, 1); v.Status != StatusFailed || v.DisableChannel != DisabledGone {
		t.Errorf("410: %+v", v)
	}
}

func TestDecidePostback(t *testing.T) {
	p := PostbackPolicy()
	if v := p.Decide(Outcome{ErrorClass: ErrClassTimeout}, 1); v.Status != StatusFailed || !strings.Contains(v.Reason, "timed out") {
		t.Errorf("timeout: %+v", v)
	}
	for _, code := range []int{408, 429, 500, 502, 503, 504} {
		if v := p.Decide(Outcome{StatusCode: code}, 1); v.Status != StatusPending || v.Delay != 30*time.Second {
			t.Errorf("%d: %+v", code, v)
		}
	}
	for _, code := range []int{301, 409, 425, 501, 400} {
		if v := p.Decide(Outcome{StatusCode: code}, 1); v.Status != StatusFailed {
			t.Errorf("%d retried: %+v", code, v)
		}
	}
	if v := p.Decide(Outcome{StatusCode: 500}, 4); v.Status != StatusFailed {
		t.Errorf("a fifth attempt: %+v", v)
	}
}

func TestJitterOnlyDelays(t *testing.T) {
	d := 100 * time.Second
	if Jitter(d, 0) != d || Jitter(d, 0.999) > 110*time.Second || Jitter(d, 0.5) != 105*time.Second {
		t.Fatal("jitter outside [d, 1.1d]")
	}
}

func TestPolicyJSON(t *testing.T) {
	var p Policy
	if err := json.Unmarshal([]byte(`"postback"`), &p); err != nil || p.Name != PolicyPostback {
		t.Fatalf("%v %+v", err, p)
	}
	if b, _ := json.Marshal(p); string(b) != `"postback"` {
		t.Fatalf("named policy marshals as %s", b)
	}
	if err := json.Unmarshal([]byte(`"hourly"`), &p); err == nil {
		t.Fatal("unknown name accepted")
	}
	if err := json.Unmarshal([]byte(`{"delays_s":[1,2],"timeout_s":3,"retry_statuses":[500],"bogus":1}`), &p); err == nil {
		t.Fatal("unknown key accepted")
	}
	if err := json.Unmarshal([]byte(`{"timeout_s":3}`), &p); err != nil || p.Name != PolicyCustom || !p.RetryOnTimeout {
		t.Fatalf("%v %+v", err, p)
	}
	if b, _ := json.Marshal(p); !strings.Contains(string(b), `"delays_s":[]`) {
		t.Fatalf("custom policy without retries marshals as %s", b)
	}
	bad := Policy{DelaysS: []int{-1, MaxPolicyDelayS + 1}, TimeoutS: 0, RetryStatuses: []int{99}}
	err := bad.Validate("policy")
	if err == nil || len(err.(*ValidationError).Fields) != 4 {
		t.Fatalf("validate: %v", err)
	}
}

func TestTypePatterns(t *testing.T) {
	for _, c := range []struct {
		pattern, typ string
		want         bool
	}{
		{"*", "payment.succeeded", true},
		{"payment.*", "payment.succeeded", true},
		{"payment.*", "payments.succeeded", false},
		{"payment.succeeded", "payment.succeeded", true},
		{"payment.succeeded", "payment.failed", false},
	} {
		if got := MatchTypePattern(c.pattern, c.typ); got != c.want {
			t.Errorf("%s ~ %s = %v", c.pattern, c.typ, got)
		}
	}
	for p, want := range map[string]bool{"*": true, "payment.*": true, "payment.succeeded": true, "a.b.*": false, "Payment.x": false, "payment": false, ".*": false} {
		if ValidTypePattern(p) != want {
			t.Errorf("ValidTypePattern(%q) != %v", p, want)
		}
	}
}

func TestActionVerdictDisablesOnRefusedCredentials(t *testing.T) {
	p := StandardPolicy()
	for _, code := range []int{401, 403} {
		o := Outcome{StatusCode: code, ErrorClass: ErrClassStatus}
		v := ActionVerdict(p.Decide(o, 1), o)
		if v.Status != StatusFailed || !strings.Contains(v.DisableChannel, "refused the credentials") {
			t.Fatalf("%d: %+v", code, v)
		}
	}
	o := Outcome{StatusCode: 422, ErrorClass: ErrClassStatus}
	if v := ActionVerdict(p.Decide(o, 1), o); v.Status != StatusFailed || v.DisableChannel != "" {
		t.Fatalf("422: %+v", v)
	}
	o = Outcome{ErrorClass: ErrClassTemplate}
	if v := p.Decide(o, 1); v.Status != StatusFailed || !strings.Contains(v.Reason, "template") {
		t.Fatalf("template error: %+v", v)
	}
}
