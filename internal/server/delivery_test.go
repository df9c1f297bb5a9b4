package server_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/webhooks"
)

// The tests in this file prove how deliveries are attempted, retried,
// scheduled and recorded, end to end: the real server, real HTTP, real
// receivers, and a fake scheduling clock moved across retry schedules.

// nextSlack absorbs the time between an attempt's start and the moment its
// next attempt is scheduled, besides the request's own duration_ms, when
// bounds are checked.
const nextSlack = 500 * time.Millisecond

// gapAfter returns how long after the start of attempt a the delivery's next
// attempt is scheduled, and the slack to allow on top of the scheduled
// delay: the attempt's own duration and nextSlack.
func gapAfter(t *testing.T, d, a map[string]any) (gap, slack time.Duration) {
	t.Helper()
	gap = tm(t, d["next_attempt_at"]).Sub(tm(t, a["started_at"]))
	return gap, time.Duration(num(a["duration_ms"]))*time.Millisecond + nextSlack
}

// num reads a JSON number as an int (0 when absent).
func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// tm reads a JSON RFC 3339 time.
func tm(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return at
}

// attemptLog returns a delivery's attempt log.
func attemptLog(t *testing.T, d map[string]any) []map[string]any {
	t.Helper()
	raw, ok := d["attempt_log"].([]any)
	if !ok {
		t.Fatalf("delivery has no attempt_log: %v", d)
	}
	out := make([]map[string]any, len(raw))
	for i, a := range raw {
		out[i] = a.(map[string]any)
	}
	return out
}

// deliveryFor returns the id of the delivery of event evtID to channel chID.
func (h *herald) deliveryFor(tenant, key, evtID, chID string) string {
	h.t.Helper()
	ds := h.deliveries(tenant, key, "event_id="+evtID+"&channel_id="+chID)
	if len(ds) != 1 {
		h.t.Fatalf("event %s, channel %s: %d deliveries, want 1", evtID, chID, len(ds))
	}
	return ds[0]["id"].(string)
}

// waitAttempts waits until a delivery has n attempts recorded, whatever its
// status, and returns it.
func (h *herald) waitAttempts(tenant, key, id string, n int) map[string]any {
	h.t.Helper()
	return h.waitDelivery(tenant, key, id, fmt.Sprintf("had %d attempts", n), func(d map[string]any) bool {
		return num(d["attempts"]) == n && d["status"] != nil
	})
}

// checkNext asserts the delivery is pending and its next attempt lies in
// [delay, delay*1.1] (+ nextSlack) after its last attempt started: jitter
// adds at most a tenth and never brings a retry forward.
func checkNext(t *testing.T, d map[string]any, delay time.Duration) time.Time {
	t.Helper()
	if d["status"] != "pending" {
		t.Fatalf("delivery is %v, want pending: %v", d["status"], d)
	}
	log := attemptLog(t, d)
	gap, slack := gapAfter(t, d, log[len(log)-1])
	if gap < delay || gap > delay+delay/10+slack {
		t.Fatalf("attempt %d: next attempt %v after it, want within [%v, %v]", len(log), gap, delay, delay+delay/10+slack)
	}
	return tm(t, d["next_attempt_at"])
}

// statusFromPath answers the status named by the last path segment
// ("/s/503" → 503).
func statusFromPath(n int, w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
	if err != nil {
		code = http.StatusOK
	}
	w.WriteHeader(code)
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestStandardRetrySchedule: a receiver that always answers 500 is tried at
// 0, +5 s, +5 min, +30 min, +2 h, +5 h, +10 h and +10 h, then the delivery
// fails; each retry is scheduled within its jitter band and does not happen
// a moment before it is due.
func TestStandardRetrySchedule(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	id := h.deliveryFor(tid, key, evt, ch)

	delays := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	d := h.waitStatus(tid, key, id, "pending", 1)
	for i, delay := range delays {
		log := attemptLog(t, d)
		if len(log) != i+1 {
			t.Fatalf("attempt log has %d entries, want %d", len(log), i+1)
		}
		a := log[i]
		if num(a["number"]) != i+1 || num(a["status_code"]) != 500 || a["error_class"] != "status" || a["trigger"] != "auto" {
			t.Fatalf("attempt %d logged as %v", i+1, a)
		}
		if i > 0 {
			gap := tm(t, a["started_at"]).Sub(tm(t, log[i-1]["started_at"]))
			if gap < delays[i-1] {
				t.Fatalf("attempt %d came %v after the previous one, before its delay %v", i+1, gap, delays[i-1])
			}
		}
		next := checkNext(t, d, delay)

		// Just short of the due time (1 s, as the fake clock runs on with
		// the wall clock): nothing happens.
		h.advance(next.Sub(h.clock.Now()) - time.Second)
		rc.quiet(t, i+1, 120*time.Millisecond)
		if got := h.delivery(tid, key, id); num(got["attempts"]) != i+1 || got["status"] != "pending" {
			t.Fatalf("before the retry was due: %v", got)
		}
		// Past it: exactly one more attempt.
		h.advance(1100 * time.Millisecond)
		want := "pending"
		if i == len(delays)-1 {
			want = "failed"
		}
		d = h.waitStatus(tid, key, id, want, i+2)
	}
	if d["next_attempt_at"] != nil {
		t.Errorf("failed delivery still has next_attempt_at %v", d["next_attempt_at"])
	}
	if num(d["last_status_code"]) != 500 || !strings.Contains(d["last_error"].(string), "8 attempts") {
		t.Errorf("failed delivery: last_status_code %v, last_error %q", d["last_status_code"], d["last_error"])
	}
	got := rc.waitN(t, 8)
	for _, r := range got {
		if r.Header.Get("webhook-id") != evt {
			t.Errorf("retry carries webhook-id %q, want the event id %q", r.Header.Get("webhook-id"), evt)
		}
	}
	// No ninth attempt, however long we wait.
	h.advance(48 * time.Hour)
	rc.quiet(t, 8, 150*time.Millisecond)
	if d := h.delivery(tid, key, id); d["status"] != "failed" || num(d["attempts"]) != 8 {
		t.Errorf("after 48 h more: %v", d)
	}
}

// TestStandardSucceedsAfterRetries: 503, 503, then 200 ends succeeded with
// three attempts and no further schedule.
func TestStandardSucceedsAfterRetries(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= 2 {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	})
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	id := h.deliveryFor(tid, key, evt, ch)

	checkNext(t, h.waitStatus(tid, key, id, "pending", 1), 5*time.Second)
	h.advance(6 * time.Second)
	checkNext(t, h.waitStatus(tid, key, id, "pending", 2), 5*time.Minute)
	h.advance(6 * time.Minute)
	d := h.waitStatus(tid, key, id, "succeeded", 3)
	if d["next_attempt_at"] != nil || d["last_error"] != nil || num(d["last_status_code"]) != 200 {
		t.Errorf("succeeded delivery: %v", d)
	}
	log := attemptLog(t, d)
	for i, want := range []int{503, 503, 200} {
		if num(log[i]["status_code"]) != want {
			t.Errorf("attempt %d: status %v, want %d", i+1, log[i]["status_code"], want)
		}
	}
	if log[2]["error_class"] != nil {
		t.Errorf("successful attempt has error_class %v", log[2]["error_class"])
	}
	h.advance(24 * time.Hour)
	rc.quiet(t, 3, 150*time.Millisecond)
}

// TestStandardStatusClasses: 3xx is retried and never followed; 400, 401,
// 404 and 422 are permanent; 408, 409, 425 and 429 are retried.
func TestStandardStatusClasses(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	target := newReceiver(t, nil) // where the redirects point
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/redirect/") {
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/redirect/"))
			w.Header().Set("Location", target.URL+"/moved")
			w.WriteHeader(code)
			return
		}
		statusFromPath(n, w, r)
	})
	type tc struct {
		path      string
		code      int
		retried   bool
		channelID string
	}
	var cases []*tc
	for _, c := range []int{301, 302, 303, 307, 308} {
		cases = append(cases, &tc{path: fmt.Sprintf("/redirect/%d", c), code: c, retried: true})
	}
	for _, c := range []int{400, 401, 404, 422} {
		cases = append(cases, &tc{path: fmt.Sprintf("/s/%d", c), code: c})
	}
	for _, c := range []int{408, 409, 425, 429} {
		cases = append(cases, &tc{path: fmt.Sprintf("/s/%d", c), code: c, retried: true})
	}
	for _, c := range cases {
		c.channelID, _ = h.channel(tid, key, rc.URL+c.path, nil)
		h.subscribe(tid, key, c.channelID, []string{"order.completed"}, nil, "")
	}
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	ids := map[*tc]string{}
	for _, c := range cases {
		ids[c] = h.deliveryFor(tid, key, evt, c.channelID)
		d := h.waitAttempts(tid, key, ids[c], 1)
		if num(d["last_status_code"]) != c.code {
			t.Errorf("%s: last_status_code %v, want %d", c.path, d["last_status_code"], c.code)
		}
		if c.retried {
			checkNext(t, d, 5*time.Second)
		} else if d["status"] != "failed" || d["next_attempt_at"] != nil {
			t.Errorf("%d: %v after one attempt, want failed for good", c.code, d)
		}
	}
	// The retried ones really are attempted again; the permanent ones not.
	h.advance(6 * time.Second)
	for _, c := range cases {
		want := 1
		if c.retried {
			want = 2
		}
		h.waitAttempts(tid, key, ids[c], want)
	}
	time.Sleep(100 * time.Millisecond)
	for _, c := range cases {
		want := 1
		if c.retried {
			want = 2
		}
		if got := rc.hits(c.path); got != want {
			t.Errorf("%s: receiver got %d requests, want %d", c.path, got, want)
		}
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("a redirect was followed: the target got %d requests", n)
	}
}

// TestGoneDisablesChannel: 410 fails the delivery, disables the channel
// with reason "gone", fails its other pending deliveries, and later events
// are not routed to it.
func TestGoneDisablesChannel(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(500) // the first event stays pending
			return
		}
		w.WriteHeader(http.StatusGone)
	})
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	other := newReceiver(t, nil)
	otherCh, _ := h.channel(tid, key, other.URL, nil)
	h.subscribe(tid, key, otherCh, []string{"order.completed"}, nil, "")

	first := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	firstID := h.deliveryFor(tid, key, first, ch)
	h.waitStatus(tid, key, firstID, "pending", 1)

	second := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	secondID := h.deliveryFor(tid, key, second, ch)
	d := h.waitStatus(tid, key, secondID, "failed", 1)
	if num(d["last_status_code"]) != 410 {
		t.Errorf("gone delivery: %v", d)
	}
	c := h.must(200, "GET", "/v1/tenants/acme/channels/"+ch, key, nil)
	if c["enabled"] != false || c["disabled_reason"] != "gone" {
		t.Fatalf("channel after 410: enabled %v, disabled_reason %v", c["enabled"], c["disabled_reason"])
	}
	d = h.waitStatus(tid, key, firstID, "failed", 1)
	if d["next_attempt_at"] != nil || !strings.Contains(fmt.Sprint(d["last_error"]), "gone") {
		t.Errorf("the channel's pending delivery after 410: %v", d)
	}

	third := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))
	h.waitStatus(tid, key, h.deliveryFor(tid, key, third["id"].(string), otherCh), "succeeded", 1)
	if num(third["deliveries"]) != 1 {
		t.Errorf("publish after 410 made %v deliveries, want 1 (only the other channel)", third["deliveries"])
	}
	if ds := h.deliveries(tid, key, "channel_id="+ch); len(ds) != 2 {
		t.Errorf("disabled channel has %d deliveries, want 2", len(ds))
	}
	for _, evt := range []string{first, second} {
		h.waitStatus(tid, key, h.deliveryFor(tid, key, evt, otherCh), "succeeded", 1)
	}
	h.advance(24 * time.Hour)
	rc.quiet(t, 2, 150*time.Millisecond)
	other.quiet(t, 3, 0)
}

// TestRetryAfter: a Retry-After hint in seconds or as an HTTP date pushes
// the next attempt out, capped at 6 h; a hint shorter than the schedule
// does not bring it forward.
func TestRetryAfter(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/seconds":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(429)
		case "/date":
			w.Header().Set("Retry-After", time.Now().Add(10*time.Minute).UTC().Format(http.TimeFormat))
			w.WriteHeader(503)
		case "/huge":
			w.Header().Set("Retry-After", "86400")
			w.WriteHeader(429)
		case "/short":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
		}
	})
	cases := []struct {
		path  string
		delay time.Duration
	}{
		{"/seconds", 120 * time.Second},
		{"/date", 599 * time.Second}, // an HTTP date has whole seconds
		{"/huge", 6 * time.Hour},
		{"/short", 5 * time.Second},
	}
	chs := map[string]string{}
	for _, c := range cases {
		chs[c.path], _ = h.channel(tid, key, rc.URL+c.path, nil)
		h.subscribe(tid, key, chs[c.path], []string{"order.completed"}, nil, "")
	}
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	for _, c := range cases {
		d := h.waitStatus(tid, key, h.deliveryFor(tid, key, evt, chs[c.path]), "pending", 1)
		hi := c.delay
		if c.path == "/date" {
			hi = 600 * time.Second
		}
		gap, slack := gapAfter(t, d, attemptLog(t, d)[0])
		if gap < c.delay || gap > hi+hi/10+slack {
			t.Errorf("%s: next attempt %v after the first, want within [%v, %v]", c.path, gap, c.delay, hi+hi/10+slack)
		}
	}
	// The scheduler honours the hint: nothing at +100 s (the 5 s schedule
	// and the short hint have long passed), a retry by +135 s.
	h.advance(100 * time.Second)
	rc.waitN(t, 5) // /short retried
	time.Sleep(120 * time.Millisecond)
	if n := rc.hits("/seconds"); n != 1 {
		t.Fatalf("Retry-After: 120 retried after 100 s (%d requests)", n)
	}
	h.advance(35 * time.Second)
	rc.waitN(t, 6)
	if n := rc.hits("/seconds"); n != 2 {
		t.Fatalf("Retry-After: 120 not retried by 135 s (%d requests)", n)
	}
}

// TestPostbackPolicy: only 408, 429, 500, 502, 503 and 504 are retried,
// after 30 s, 2 min and 10 min, so at most 4 attempts; anything else fails
// at once.
func TestPostbackPolicy(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, statusFromPath)
	retried := []int{408, 429, 500, 502, 503, 504}
	permanent := []int{501, 404, 409, 425, 302}
	chs := map[int]string{}
	for _, c := range append(append([]int{}, retried...), permanent...) {
		chs[c], _ = h.channel(tid, key, fmt.Sprintf("%s/s/%d", rc.URL, c), map[string]any{"policy": "postback"})
		h.subscribe(tid, key, chs[c], []string{"order.completed"}, nil, "")
	}
	got := h.must(200, "GET", "/v1/tenants/acme/channels/"+chs[503], key, nil)
	if got["policy"] != "postback" {
		t.Fatalf("channel policy reads back as %v", got["policy"])
	}
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	ids := map[int]string{}
	for c, ch := range chs {
		ids[c] = h.deliveryFor(tid, key, evt, ch)
	}
	for _, c := range permanent {
		d := h.waitAttempts(tid, key, ids[c], 1)
		if d["status"] != "failed" || num(d["last_status_code"]) != c {
			t.Errorf("postback %d: %v, want failed after one attempt", c, d)
		}
	}
	delays := []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute}
	for i, delay := range delays {
		var next time.Time
		for _, c := range retried {
			n := checkNext(t, h.waitStatus(tid, key, ids[c], "pending", i+1), delay)
			if n.After(next) {
				next = n
			}
		}
		h.advance(next.Sub(h.clock.Now()) + 100*time.Millisecond)
	}
	for _, c := range retried {
		d := h.waitStatus(tid, key, ids[c], "failed", 4)
		if d["next_attempt_at"] != nil {
			t.Errorf("postback %d: failed with next_attempt_at %v", c, d["next_attempt_at"])
		}
	}
	h.advance(24 * time.Hour)
	time.Sleep(150 * time.Millisecond)
	for _, c := range retried {
		if n := rc.hits(fmt.Sprintf("/s/%d", c)); n != 4 {
			t.Errorf("postback %d: %d requests, want 4", c, n)
		}
	}
	for _, c := range permanent {
		if n := rc.hits(fmt.Sprintf("/s/%d", c)); n != 1 {
			t.Errorf("postback %d: %d requests, want 1", c, n)
		}
	}
}

// TestPostbackTimeoutNotRetried: under the postback policy a response
// timeout ends the delivery as failed after exactly one attempt.
func TestPostbackTimeoutNotRetried(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(200)
	})
	ch, _ := h.channel(tid, key, rc.URL, map[string]any{"policy": "postback", "timeout_s": 1})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	id := h.deliveryFor(tid, key, evt, ch)
	d := h.waitAttempts(tid, key, id, 1)
	a := attemptLog(t, d)[0]
	if d["status"] != "failed" || d["next_attempt_at"] != nil || a["error_class"] != "timeout" {
		t.Fatalf("postback timeout: delivery %v, attempt %v; want failed with error_class timeout", d, a)
	}
	if ms := num(a["duration_ms"]); ms < 900 || ms >= 2000 {
		t.Errorf("timed-out attempt took %d ms, want about the 1 s channel timeout", ms)
	}
	h.advance(24 * time.Hour)
	rc.quiet(t, 1, 150*time.Millisecond)
	if d := h.delivery(tid, key, id); d["status"] != "failed" || num(d["attempts"]) != 1 {
		t.Errorf("after 24 h: %v", d)
	}
}

// TestPostbackRetriesConnectionErrors: a refused connection is retried on
// the postback schedule, four attempts in all.
func TestPostbackRetriesConnectionErrors(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	ch, _ := h.channel(tid, key, "http://"+closedPort(t)+"/hook", map[string]any{"policy": "postback"})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	id := h.deliveryFor(tid, key, evt, ch)
	for i, delay := range []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute} {
		d := h.waitStatus(tid, key, id, "pending", i+1)
		a := attemptLog(t, d)[i]
		if a["error_class"] != "connect" || a["status_code"] != nil {
			t.Fatalf("attempt %d: %v, want error_class connect and no status", i+1, a)
		}
		next := checkNext(t, d, delay)
		h.advance(next.Sub(h.clock.Now()) + 100*time.Millisecond)
	}
	d := h.waitStatus(tid, key, id, "failed", 4)
	if a := attemptLog(t, d)[3]; a["error_class"] != "connect" {
		t.Errorf("last attempt %v", a)
	}
}

// TestCustomPolicy: a custom policy's delays, statuses and timeout are what
// it says, and invalid ones are refused naming the field.
func TestCustomPolicy(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		statusFromPath(n, w, r)
	})
	t.Cleanup(func() { close(release) }) // before the receiver closes
	policy := map[string]any{"delays_s": []int{1, 2}, "timeout_s": 1, "retry_on_timeout": true, "retry_statuses": []int{500}}
	chs := map[string]string{}
	for _, p := range []string{"/s/500", "/s/503", "/hang"} {
		chs[p], _ = h.channel(tid, key, rc.URL+p, map[string]any{"policy": policy})
		h.subscribe(tid, key, chs[p], []string{"order.completed"}, nil, "")
	}
	c := h.must(200, "GET", "/v1/tenants/acme/channels/"+chs["/s/500"], key, nil)
	want := map[string]any{"delays_s": []any{1.0, 2.0}, "timeout_s": 1.0, "retry_on_timeout": true, "retry_statuses": []any{500.0}}
	if !reflect.DeepEqual(c["policy"], want) {
		t.Fatalf("custom policy reads back as %v, want %v", c["policy"], want)
	}
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)

	d := h.waitAttempts(tid, key, h.deliveryFor(tid, key, evt, chs["/s/503"]), 1)
	if d["status"] != "failed" {
		t.Errorf("503 under retry_statuses [500]: %v, want failed", d)
	}

	id := h.deliveryFor(tid, key, evt, chs["/s/500"])
	next := checkNext(t, h.waitStatus(tid, key, id, "pending", 1), time.Second)
	h.advance(next.Sub(h.clock.Now()) + 50*time.Millisecond)
	next = checkNext(t, h.waitStatus(tid, key, id, "pending", 2), 2*time.Second)
	h.advance(next.Sub(h.clock.Now()) + 50*time.Millisecond)
	h.waitStatus(tid, key, id, "failed", 3)

	// The policy's 1 s timeout applies, and a timeout is retried.
	d = h.waitAttempts(tid, key, h.deliveryFor(tid, key, evt, chs["/hang"]), 1)
	a := attemptLog(t, d)[0]
	if a["error_class"] != "timeout" || num(a["duration_ms"]) < 900 || num(a["duration_ms"]) > 5000 {
		t.Errorf("hanging receiver: attempt %v, want a timeout after the policy's 1 s (not the default 15 s)", a)
	}
	if d["status"] != "pending" {
		t.Errorf("retry_on_timeout: delivery %v, want pending", d)
	}

	h.advance(24 * time.Hour)
	time.Sleep(150 * time.Millisecond)
	if n := rc.hits("/s/500"); n != 3 {
		t.Errorf("500 receiver got %d requests, want 3", n)
	}
	if n := rc.hits("/s/503"); n != 1 {
		t.Errorf("503 receiver got %d requests, want 1", n)
	}

	// Each refusal names the offending field (in the field path or, for a
	// value that is not a policy at all, in the detail).
	for _, bad := range []struct {
		policy any
		names  string
	}{
		{map[string]any{"delays_s": []int{5, -1}, "timeout_s": 5}, "delays_s[1]"},
		{map[string]any{"delays_s": []int{5}, "timeout_s": 5, "retries": 3}, "retries"},
		{map[string]any{"delays_s": []int{5}, "timeout_s": 0}, "timeout_s"},
		{"aggressive", "aggressive"},
	} {
		r := h.call("POST", "/v1/tenants/acme/channels", key, map[string]any{"name": "bad", "url": rc.URL, "policy": bad.policy})
		if r.Status != 422 {
			t.Errorf("policy %v: %s, want 422", bad.policy, r)
			continue
		}
		errs, _ := r.JSON()["errors"].([]any)
		found := false
		for _, e := range errs {
			fe := e.(map[string]any)
			field, detail := fmt.Sprint(fe["field"]), fmt.Sprint(fe["detail"])
			if strings.HasPrefix(field, "policy") && strings.Contains(field+" "+detail, bad.names) {
				found = true
			}
		}
		if !found {
			t.Errorf("policy %v: errors %v, want a policy field error naming %q", bad.policy, errs, bad.names)
		}
	}
	if n := len(h.must(200, "GET", "/v1/tenants/acme/channels", key, nil)["data"].([]any)); n != 3 {
		t.Errorf("%d channels after the refusals, want 3", n)
	}
}

// TestManualRetry: a manual retry of a failed delivery is one immediate,
// logged attempt that is never followed up automatically; pending
// deliveries, disabled channels and unknown ids are refused.
func TestManualRetry(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	var status atomic.Int32
	status.Store(400)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")

	ok := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	okID := h.deliveryFor(tid, key, ok, ch)
	h.waitStatus(tid, key, okID, "failed", 1)
	bad := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	badID := h.deliveryFor(tid, key, bad, ch)
	h.waitStatus(tid, key, badID, "failed", 1)

	status.Store(200)
	ans := h.must(200, "POST", "/v1/tenants/acme/deliveries/"+okID+"/retry", key, nil)
	att, dl := ans["attempt"].(map[string]any), ans["delivery"].(map[string]any)
	if num(att["status_code"]) != 200 || att["trigger"] != "manual" || num(att["number"]) != 2 || dl["status"] != "succeeded" {
		t.Fatalf("manual retry answered %v", ans)
	}
	if n := len(rc.requests()); n != 3 {
		t.Fatalf("receiver got %d requests after the retry answered, want 3 (the retry is synchronous)", n)
	}
	d := h.delivery(tid, key, okID)
	log := attemptLog(t, d)
	if d["status"] != "succeeded" || num(d["attempts"]) != 2 || len(log) != 2 || log[0]["trigger"] != "auto" || log[1]["trigger"] != "manual" {
		t.Fatalf("after manual retry: %v", d)
	}
	if got := rc.requests()[2]; got.Header.Get("webhook-id") != ok {
		t.Errorf("manual retry sent webhook-id %q, want %q", got.Header.Get("webhook-id"), ok)
	}

	status.Store(500)
	ans = h.must(200, "POST", "/v1/tenants/acme/deliveries/"+badID+"/retry", key, nil)
	if dl := ans["delivery"].(map[string]any); dl["status"] != "failed" || dl["next_attempt_at"] != nil {
		t.Fatalf("failed manual retry answered %v, want failed with no next attempt", ans)
	}
	for range 3 {
		h.advance(11 * time.Hour)
		time.Sleep(50 * time.Millisecond)
	}
	rc.quiet(t, 4, 100*time.Millisecond)
	if d := h.delivery(tid, key, badID); d["status"] != "failed" || num(d["attempts"]) != 2 {
		t.Fatalf("failed manual retry was followed up: %v", d)
	}

	// A pending delivery: 409, and no request made.
	pend := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	pendID := h.deliveryFor(tid, key, pend, ch)
	h.waitStatus(tid, key, pendID, "pending", 1)
	if r := h.call("POST", "/v1/tenants/acme/deliveries/"+pendID+"/retry", key, nil); r.Status != 409 {
		t.Errorf("retry of a pending delivery: %s, want 409", r)
	}
	if r := h.call("POST", "/v1/tenants/acme/deliveries/dlv_nope/retry", key, nil); r.Status != 404 {
		t.Errorf("retry of an unknown delivery: %s, want 404", r)
	}

	h.must(200, "PATCH", "/v1/tenants/acme/channels/"+ch, key, map[string]any{"enabled": false})
	status.Store(200)
	if r := h.call("POST", "/v1/tenants/acme/deliveries/"+badID+"/retry", key, nil); r.Status != 409 {
		t.Errorf("retry on a disabled channel: %s, want 409", r)
	}
	rc.quiet(t, 5, 100*time.Millisecond)
}

// TestRecoverChannel: recover re-queues the failed deliveries created since
// a time, which then run through the policy again; older ones stay failed;
// a disabled channel must be re-enabled first.
func TestRecoverChannel(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	var status atomic.Int32
	status.Store(400)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	publishFailed := func() string {
		evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
		id := h.deliveryFor(tid, key, evt, ch)
		h.waitStatus(tid, key, id, "failed", 1)
		return id
	}
	old := publishFailed()
	h.advance(time.Hour)
	since := h.clock.Now()
	h.advance(time.Second)
	recent := []string{publishFailed(), publishFailed()}

	status.Store(503)
	ans := h.must(202, "POST", "/v1/tenants/acme/channels/"+ch+"/recover", key, map[string]any{"since": since.Format(time.RFC3339Nano)})
	if num(ans["requeued"]) != 2 {
		t.Fatalf("recover answered %v, want requeued 2", ans)
	}
	// Re-queued deliveries restart the policy: attempted now, then 5 s later.
	for _, id := range recent {
		checkNext(t, h.waitStatus(tid, key, id, "pending", 2), 5*time.Second)
	}
	status.Store(200)
	h.advance(6 * time.Second)
	for _, id := range recent {
		h.waitStatus(tid, key, id, "succeeded", 3)
	}
	rc.quiet(t, 7, 100*time.Millisecond)
	if d := h.delivery(tid, key, old); d["status"] != "failed" || num(d["attempts"]) != 1 {
		t.Errorf("delivery from before since: %v, want still failed", d)
	}

	// Disabled: 409 until re-enabled; then recover brings the old one back.
	h.must(200, "PATCH", "/v1/tenants/acme/channels/"+ch, key, map[string]any{"enabled": false})
	early := since.Add(-2 * time.Hour).Format(time.RFC3339)
	if r := h.call("POST", "/v1/tenants/acme/channels/"+ch+"/recover", key, map[string]any{"since": early}); r.Status != 409 {
		t.Fatalf("recover on a disabled channel: %s, want 409", r)
	}
	h.must(200, "PATCH", "/v1/tenants/acme/channels/"+ch, key, map[string]any{"enabled": true})
	ans = h.must(202, "POST", "/v1/tenants/acme/channels/"+ch+"/recover", key, map[string]any{"since": early})
	if num(ans["requeued"]) != 1 {
		t.Fatalf("recover after re-enabling answered %v, want requeued 1", ans)
	}
	h.waitStatus(tid, key, old, "succeeded", 2)
	rc.quiet(t, 8, 100*time.Millisecond)
}

// TestChannelTest: a channel test sends the catalog example, signed, and
// answers with the attempt; a failed test is never retried.
func TestChannelTest(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, secret := h.channel(tid, key, rc.URL, nil)
	ans := h.must(200, "POST", "/v1/tenants/acme/channels/"+ch+"/test", key, map[string]any{"event_type": "payment.succeeded"})
	att, dl := ans["attempt"].(map[string]any), ans["delivery"].(map[string]any)
	if num(att["status_code"]) != 204 || att["trigger"] != "test" || dl["status"] != "succeeded" {
		t.Fatalf("test answered %v", ans)
	}
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests when the test answered, want 1", len(got))
	}
	v, err := webhooks.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(got[0].Body, got[0].Header); err != nil {
		t.Errorf("test request does not verify: %v", err)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(got[0].Body, got[0].Header); err != nil {
		t.Errorf("reference verifier rejects the test request: %v", err)
	}
	p := got[0].payload()
	if p["type"] != "payment.succeeded" || !reflect.DeepEqual(p["data"], any(h.example("payment.succeeded"))) {
		t.Errorf("test payload %v is not the catalog example", p)
	}
	if log := attemptLog(t, h.delivery(tid, key, dl["id"].(string))); len(log) != 1 || log[0]["trigger"] != "test" {
		t.Errorf("test delivery log: %v", log)
	}

	failing := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	fch, _ := h.channel(tid, key, failing.URL, nil)
	ans = h.must(200, "POST", "/v1/tenants/acme/channels/"+fch+"/test", key, map[string]any{"event_type": "payment.succeeded"})
	att, dl = ans["attempt"].(map[string]any), ans["delivery"].(map[string]any)
	if num(att["status_code"]) != 500 || att["trigger"] != "test" || dl["status"] != "failed" || dl["next_attempt_at"] != nil {
		t.Fatalf("failing test answered %v", ans)
	}
	for range 3 {
		h.advance(11 * time.Hour)
		time.Sleep(50 * time.Millisecond)
	}
	failing.quiet(t, 1, 100*time.Millisecond)
	if d := h.delivery(tid, key, dl["id"].(string)); d["status"] != "failed" || num(d["attempts"]) != 1 {
		t.Errorf("failed test delivery after 33 h: %v", d)
	}

	r := h.call("POST", "/v1/tenants/acme/channels/"+ch+"/test", key, map[string]any{"event_type": "payment.teleported"})
	if r.Status != 422 || !strings.Contains(string(r.Body), "event_type") {
		t.Errorf("unknown event type: %s, want 422 naming event_type", r)
	}
	rc.quiet(t, 1, 50*time.Millisecond)
}

// TestSecretRotation: after a rotation both secrets sign for 24 h, then
// only the new one.
func TestSecretRotation(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, oldSecret := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")

	rot := h.must(200, "POST", "/v1/tenants/acme/channels/"+ch+"/rotate-secret", key, nil)
	newSecret := rot["secret"].(string)
	if newSecret == "" || newSecret == oldSecret {
		t.Fatalf("rotation answered %v", rot)
	}
	if s := h.must(200, "GET", "/v1/tenants/acme/channels/"+ch+"/secret", key, nil)["secret"]; s != newSecret {
		t.Fatalf("GET secret shows %v, want the new secret", s)
	}
	verifies := func(r received, secret string) (ours, reference bool) {
		v, err := webhooks.NewVerifier(secret)
		if err != nil {
			t.Fatal(err)
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return v.Verify(r.Body, r.Header) == nil, wh.Verify(r.Body, r.Header) == nil
	}
	sigs := func(r received) int { return strings.Count(r.Header.Get("webhook-signature"), "v1,") }

	// Each delivery is recorded before the clock moves: a jump of hours
	// during an attempt would expire its lease.
	deliver := func(n int) received {
		t.Helper()
		evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
		h.waitStatus(tid, key, h.deliveryFor(tid, key, evt, ch), "succeeded", 1)
		got := rc.requests()
		if len(got) != n || got[n-1].Header.Get("webhook-id") != evt {
			t.Fatalf("receiver got %d requests, want %d, the last of event %s", len(got), n, evt)
		}
		return got[n-1]
	}
	got := deliver(1)
	if n := sigs(got); n != 2 {
		t.Errorf("during the overlap: %d v1 signatures (%q), want 2", n, got.Header.Get("webhook-signature"))
	}
	for _, s := range []string{oldSecret, newSecret} {
		if ours, ref := verifies(got, s); !ours || !ref {
			t.Errorf("during the overlap, secret %s…: webhooks verifier %v, reference verifier %v", s[:10], ours, ref)
		}
	}

	h.advance(23 * time.Hour)
	if got := deliver(2); sigs(got) != 2 {
		t.Errorf("23 h after rotation: %d signatures, want 2", sigs(got))
	}

	h.advance(2 * time.Hour)
	got = deliver(3)
	if n := sigs(got); n != 1 {
		t.Errorf("25 h after rotation: %d v1 signatures, want 1", n)
	}
	if ours, ref := verifies(got, newSecret); !ours || !ref {
		t.Errorf("25 h after rotation the new secret does not verify: %v %v", ours, ref)
	}
	if ours, ref := verifies(got, oldSecret); ours || ref {
		t.Errorf("25 h after rotation the old secret still verifies: %v %v", ours, ref)
	}
}

// TestChannelIsolation: a channel whose receiver hangs until its timeout
// does not slow another channel, and never gets more than max_in_flight
// requests at once.
func TestChannelIsolation(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	release := make(chan struct{})
	var cur, peak atomic.Int32
	slow := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the receiver closes
	fast := newReceiver(t, nil)
	slowCh, _ := h.channel(tid, key, slow.URL, map[string]any{"timeout_s": 2, "max_in_flight": 2})
	fastCh, _ := h.channel(tid, key, fast.URL, nil)
	h.subscribe(tid, key, slowCh, []string{"order.completed"}, nil, "")
	h.subscribe(tid, key, fastCh, []string{"order.completed"}, nil, "")

	item := map[string]any{"type": "order.completed", "source": "shop", "data": h.example("order.completed")}
	items := make([]any, 20)
	for i := range items {
		items[i] = item
	}
	start := time.Now()
	h.must(202, "POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": items})
	fast.waitN(t, 20)
	took := time.Since(start)
	t.Logf("the healthy channel got 20 events in %v", took)
	if took > 1900*time.Millisecond {
		t.Errorf("the healthy channel needed %v for 20 events, longer than one 2 s timeout of the slow channel", took)
	}
	if n := len(slow.requests()); n > 2 {
		t.Errorf("slow channel got %d requests within %v, want at most max_in_flight 2", n, took)
	}
	// A second round starts once the first times out, still two at a time.
	slow.waitN(t, 4)
	if p := peak.Load(); p != 2 {
		t.Errorf("slow receiver saw %d concurrent requests at most, want exactly max_in_flight 2", p)
	}
	n := 0
	for _, d := range h.deliveries(tid, key, "channel_id="+slowCh+"&status=pending") {
		if num(d["attempts"]) != 1 {
			continue
		}
		n++
		a := attemptLog(t, h.delivery(tid, key, d["id"].(string)))[0]
		if a["error_class"] != "timeout" || num(a["duration_ms"]) < 1900 {
			t.Errorf("slow delivery's attempt %v, want a timeout after 2 s", a)
		}
	}
	if n < 2 {
		t.Errorf("%d slow deliveries recorded a timed-out attempt, want at least 2", n)
	}
	fast.quiet(t, 20, 10*time.Millisecond)
}

// TestRateLimit: a channel limited to 5 requests a second gets 10 events
// spread over more than 1.5 s (evenly spaced they take 1.8 s; a burst of a
// second's worth would deliver them in 1 s). Only a lower bound is
// asserted: a loaded machine can only make it slower.
func TestRateLimit(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, map[string]any{"rate_limit_per_sec": 5})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	item := map[string]any{"type": "order.completed", "source": "shop", "data": h.example("order.completed")}
	items := make([]any, 10)
	for i := range items {
		items[i] = item
	}
	start := time.Now()
	h.must(202, "POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": items})
	got := rc.waitN(t, 10)
	if span := got[9].At.Sub(start); span < 1500*time.Millisecond {
		t.Errorf("10 events at 5/s arrived within %v, want at least 1.5 s", span)
	}
}

// TestAttemptLog: each attempt is logged with its number, status, duration,
// response body (truncated to 4096 bytes) and error class.
func TestAttemptLog(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	big := bytes.Repeat([]byte("0123456789abcdef"), 640) // 10 KiB
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			time.Sleep(60 * time.Millisecond)
			w.WriteHeader(503)
			_, _ = w.Write(big)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	evt := h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))["id"].(string)
	id := h.deliveryFor(tid, key, evt, ch)
	h.waitStatus(tid, key, id, "pending", 1)
	h.advance(6 * time.Second)
	d := h.waitStatus(tid, key, id, "succeeded", 2)
	log := attemptLog(t, d)
	if len(log) != 2 {
		t.Fatalf("attempt log %v", log)
	}
	a1, a2 := log[0], log[1]
	if num(a1["number"]) != 1 || num(a1["status_code"]) != 503 || a1["error_class"] != "status" || a1["trigger"] != "auto" {
		t.Errorf("attempt 1: %v", a1)
	}
	if ms := num(a1["duration_ms"]); ms < 60 || ms > 5000 {
		t.Errorf("attempt 1 duration_ms %d, want at least the receiver's 60 ms", ms)
	}
	if body, _ := a1["response_body"].(string); body != string(big[:4096]) {
		t.Errorf("attempt 1 response_body has %d bytes, want the first 4096 of the 10 KiB answer", len(body))
	}
	if num(a2["number"]) != 2 || num(a2["status_code"]) != 200 || a2["error_class"] != nil || a2["response_body"] != `{"ok":true}` {
		t.Errorf("attempt 2: %v", a2)
	}
	if _, ok := a2["duration_ms"]; !ok {
		t.Errorf("attempt 2 has no duration_ms: %v", a2)
	}

	// A multi-byte body cut at 4096 bytes stays within 4096 bytes and valid.
	wide := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = w.Write([]byte("x" + strings.Repeat("é", 5000)))
	})
	wch, _ := h.channel(tid, key, wide.URL, nil)
	h.subscribe(tid, key, wch, []string{"refund.succeeded"}, nil, "")
	evt = h.publish(tid, key, "refund.succeeded", "shop", h.example("refund.succeeded"))["id"].(string)
	d = h.waitStatus(tid, key, h.deliveryFor(tid, key, evt, wch), "failed", 1)
	body, _ := attemptLog(t, d)[0]["response_body"].(string)
	if want := "x" + strings.Repeat("é", 2047); body != want {
		t.Errorf("multi-byte response_body: %d bytes (valid UTF-8 %v), want the %d bytes of whole runes within 4096",
			len(body), utf8.ValidString(body), len(want))
	}

	// Invalid bytes are replaced, and the replacements still fit in 4096.
	binary := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = w.Write(bytes.Repeat([]byte{0xff, 'a'}, 5000))
	})
	bch, _ := h.channel(tid, key, binary.URL, nil)
	h.subscribe(tid, key, bch, []string{"dispute.opened"}, nil, "")
	evt = h.publish(tid, key, "dispute.opened", "shop", h.example("dispute.opened"))["id"].(string)
	d = h.waitStatus(tid, key, h.deliveryFor(tid, key, evt, bch), "failed", 1)
	body, _ = attemptLog(t, d)[0]["response_body"].(string)
	if len(body) > 4096 || len(body) < 4000 || !utf8.ValidString(body) {
		t.Errorf("binary response_body: %d bytes, valid UTF-8 %v; want valid UTF-8 within 4096 bytes", len(body), utf8.ValidString(body))
	}
}
