package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/publish"
)

// requestHash identifies a publish request body for idempotent replays,
// insensitive to JSON whitespace.
func requestHash(body []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	sum := sha256.Sum256(buf.Bytes())
	return sum[:]
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

func (s *Server) publishEvent(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	body, err := readBody(w, r, maxEventBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			dataTooLarge(w)
			return
		}
		s.fail(w, r, err)
		return
	}
	in, ok := publish.DecodeInput(body)
	if !ok && !decodeBytes(w, body, &in) {
		return
	}
	// Too much data is 413 whether the body limit caught it or not.
	if len(bytes.TrimSpace(in.Data)) > publish.MaxDataBytes {
		dataTooLarge(w)
		return
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > publish.MaxIdempotencyKey {
			s.fail(w, r, herald.Invalid("Idempotency-Key", "is %d characters long; use a key of at most %d characters", len(key), publish.MaxIdempotencyKey))
			return
		}
		in.IdempotencyKey = key
	}
	s.publishOne(r.Context(), w, r.Method, r.URL.Path, tid, in, body)
}

// publishOne stores a single event read from body and answers for it;
// publishEvent and ServePublish end here.
func (s *Server) publishOne(ctx context.Context, w http.ResponseWriter, method, path, tid string, in publish.Input, body []byte) {
	if in.IdempotencyKey != "" { // the hash only serves replays
		in.RequestHash = requestHash(body)
	}
	res, err := s.Publisher.Publish(ctx, tid, []publish.Input{in}, func(int) string { return "" })
	if err != nil {
		s.failAt(w, method, path, err)
		return
	}
	s.answerPublish(w, res[0])
}

// itemError adds the decoding error of batch item i, if any, to verr.
func itemError(verr *herald.ValidationError, i int, err error) {
	var fe *herald.ValidationError
	var se *shapeError
	switch {
	case err == nil:
	case errors.As(err, &fe):
		for _, f := range fe.Fields {
			verr.Add(fmt.Sprintf("events[%d].%s", i, f.Field), "%s", f.Detail)
		}
	case errors.As(err, &se):
		verr.Add(fmt.Sprintf("events[%d]", i), "%v", se)
	default:
		verr.Add(fmt.Sprintf("events[%d]", i), "%v", err)
	}
}

// dataTooLarge answers a publish whose data is over the limit.
func dataTooLarge(w http.ResponseWriter) {
	problem(w, http.StatusRequestEntityTooLarge, "Request too large",
		"data may be at most 256 KiB per event; send large content by reference (a URL or id) instead",
		[]herald.FieldError{{Field: "data", Detail: fmt.Sprintf("must be at most 256 KiB (%d bytes) of JSON; send large content by reference (a URL or id) instead", publish.MaxDataBytes)}})
}

func (s *Server) answerPublish(w http.ResponseWriter, res herald.PublishResult) {
	switch {
	case res.KeyMismatch:
		problem(w, http.StatusUnprocessableEntity, "Idempotency key reused",
			fmt.Sprintf("this Idempotency-Key was used for event %s with a different body; resend the original body or use a new key", res.EventID),
			[]herald.FieldError{{Field: "Idempotency-Key", Detail: "was used with a different body"}})
	case res.Replayed:
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusOK, res)
	default:
		writeJSON(w, http.StatusAccepted, res)
	}
}

func (s *Server) publishBatch(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	body, err := readBody(w, r, maxBatchBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Events []json.RawMessage `json:"events"`
	}
	if !decodeBytes(w, body, &in) {
		return
	}
	switch {
	case len(in.Events) == 0:
		s.fail(w, r, herald.Invalid("events", "is required: an array of 1 to %d events", publish.MaxBatch))
		return
	case len(in.Events) > publish.MaxBatch:
		s.fail(w, r, herald.Invalid("events", "holds %d events; at most %d are allowed per batch", len(in.Events), publish.MaxBatch))
		return
	}
	inputs := make([]publish.Input, len(in.Events))
	verr := &herald.ValidationError{}
	for i, raw := range in.Events {
		var ok bool
		if inputs[i], ok = publish.DecodeInput(raw); !ok {
			itemError(verr, i, unmarshalStrict(raw, &inputs[i]))
		}
		if inputs[i].IdempotencyKey != "" {
			inputs[i].RequestHash = requestHash(raw)
		}
	}
	if err := verr.Err(); err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Publisher.Publish(r.Context(), tid, inputs, func(i int) string { return fmt.Sprintf("events[%d].", i) })
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(res) == 1 && res[0].KeyMismatch {
		s.answerPublish(w, res[0])
		return
	}
	status := http.StatusOK // every item replayed
	for _, x := range res {
		if !x.Replayed {
			status = http.StatusAccepted
		}
	}
	if status == http.StatusOK {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, status, map[string]any{"events": res})
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	pg, ok := page(w, r)
	if !ok {
		return
	}
	since, ok := timeParam(w, r, "since")
	if !ok {
		return
	}
	until, ok := timeParam(w, r, "until")
	if !ok {
		return
	}
	q := r.URL.Query()
	f := herald.EventFilter{Type: q.Get("type"), Source: q.Get("source"), Since: since, Until: until}
	answerList(s, w, r, pg, func(pg herald.Page) ([]herald.Event, error) { return s.Store.ListEvents(r.Context(), tid, f, pg) },
		func(e herald.Event) string { return e.ID })
}

type eventDetail struct {
	*herald.Event
	Deliveries []herald.Delivery `json:"deliveries"`
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	e, err := s.Store.GetEvent(r.Context(), tid, r.PathValue("id"))
	if !s.found(w, r, err, "event", tid) {
		return
	}
	ds, err := s.Store.ListDeliveries(r.Context(), tid, herald.DeliveryFilter{EventID: e.ID}, herald.Page{Limit: 500})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ds == nil {
		ds = []herald.Delivery{}
	}
	writeJSON(w, http.StatusOK, eventDetail{Event: e, Deliveries: ds})
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	pg, ok := page(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := herald.DeliveryFilter{Status: herald.DeliveryStatus(q.Get("status")), ChannelID: q.Get("channel_id"),
		EventID: q.Get("event_id"), EventType: q.Get("event_type")}
	if f.Status != "" && !f.Status.Valid() {
		problem(w, http.StatusBadRequest, "Bad query", "status must be pending, succeeded or failed",
			[]herald.FieldError{{Field: "status", Detail: "must be pending, succeeded or failed"}})
		return
	}
	if f.Since, ok = timeParam(w, r, "since"); !ok {
		return
	}
	if f.Until, ok = timeParam(w, r, "until"); !ok {
		return
	}
	answerList(s, w, r, pg, func(pg herald.Page) ([]herald.Delivery, error) {
		return s.Store.ListDeliveries(r.Context(), tid, f, pg)
	},
		func(d herald.Delivery) string { return d.ID })
}

type deliveryDetail struct {
	*herald.Delivery
	AttemptLog []herald.Attempt `json:"attempt_log"`
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	d, err := s.Store.GetDelivery(r.Context(), tid, r.PathValue("id"))
	if !s.found(w, r, err, "delivery", tid) {
		return
	}
	as, err := s.Store.ListAttempts(r.Context(), tid, d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if as == nil {
		as = []herald.Attempt{}
	}
	writeJSON(w, http.StatusOK, deliveryDetail{Delivery: d, AttemptLog: as})
}

// retryDelivery makes one immediate, synchronous attempt of a finished
// delivery and answers with its result.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request, p principal) {
	tid, ok := s.tenant(w, r, p)
	if !ok {
		return
	}
	now := s.Clock.Now()
	claim, err := s.Store.LeaseDelivery(r.Context(), tid, r.PathValue("id"), now, now.Add(herald.MaxTimeoutS*time.Second+time.Minute))
	if !s.found(w, r, err, "delivery", tid) {
		return
	}
	// The attempt runs to its end (bounded by the channel's timeout) even if
	// the caller hangs up, so it is always recorded whole.
	comp, err := s.Dispatcher.Attempt(context.WithoutCancel(r.Context()), *claim, herald.TriggerManual)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, attemptAnswer{Delivery: comp.Delivery, Attempt: comp.Attempt})
}
