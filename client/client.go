// Package client is a Go client for Herald's REST API.
//
//	c := client.New("http://127.0.0.1:8080", os.Getenv("HERALD_API_KEY"))
//	res, err := c.Publish(ctx, "acme", client.Event{Type: "order.completed", Source: "shop", Data: data},
//		client.WithIdempotencyKey("order-1001"))
//
// Errors from the API are *Error values carrying the problem document, so a
// caller can see which field was wrong and why.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// Client calls one Herald server with one API key.
type Client struct {
	baseURL string
	key     string
	http    *http.Client
}

// New returns a client for the server at baseURL using key (a tenant key or
// the operator key).
func New(baseURL, key string) *Client {
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), key: key, http: &http.Client{Timeout: 60 * time.Second}}
}

// WithHTTPClient replaces the HTTP client.
func (c *Client) WithHTTPClient(h *http.Client) *Client {
	c.http = h
	return c
}

// Error is an API error: the problem document Herald answered with.
type Error struct {
	Status int                 `json:"status"`
	Title  string              `json:"title"`
	Detail string              `json:"detail"`
	Errors []herald.FieldError `json:"errors"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("herald: %d %s: %s", e.Status, e.Title, e.Detail)
	for _, f := range e.Errors[min(1, len(e.Errors)):] {
		msg += "; " + f.Field + ": " + f.Detail
	}
	return msg
}

// do sends a request and decodes a JSON answer into out (if not nil). It
// returns the HTTP status.
func (c *Client) do(ctx context.Context, method, path string, in, out any, header http.Header) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		e := &Error{Status: resp.StatusCode, Title: resp.Status}
		if err := json.Unmarshal(raw, e); err != nil || e.Detail == "" {
			e.Detail = strings.TrimSpace(string(raw))
		}
		return resp.StatusCode, e
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

func tenantPath(tenant string, parts ...string) string {
	p := "/v1/tenants/" + url.PathEscape(tenant)
	for _, x := range parts {
		p += "/" + url.PathEscape(x)
	}
	return p
}

// List is one page of a list; pass NextCursor to the next call.
type List[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// TenantCreated is a new tenant with its first API key, shown only once.
type TenantCreated struct {
	herald.Tenant
	APIKey string `json:"api_key"`
}

// CreateTenant creates a tenant (operator key). An empty id lets Herald
// choose one.
func (c *Client) CreateTenant(ctx context.Context, id, name string) (*TenantCreated, error) {
	var out TenantCreated
	_, err := c.do(ctx, "POST", "/v1/tenants", map[string]string{"id": id, "name": name}, &out, nil)
	return &out, err
}

// Event is an event to publish.
type Event struct {
	Type           string     `json:"type"`
	Source         string     `json:"source,omitempty"`
	OccurredAt     *time.Time `json:"occurred_at,omitempty"`
	Data           any        `json:"data"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
}

// PublishResult is Herald's answer to a publish.
type PublishResult struct {
	ID         string `json:"id"`
	Deliveries int    `json:"deliveries"`
	Suppressed bool   `json:"suppressed"`
	// Replayed is true when the idempotency key had been seen with the same
	// body: nothing new was stored.
	Replayed bool `json:"-"`
}

// PublishOption adjusts a publish.
type PublishOption func(http.Header)

// WithIdempotencyKey makes a publish safe to repeat for 24 hours.
func WithIdempotencyKey(key string) PublishOption {
	return func(h http.Header) { h.Set("Idempotency-Key", key) }
}

// Publish publishes one event. It returns once Herald has stored it.
func (c *Client) Publish(ctx context.Context, tenant string, e Event, opts ...PublishOption) (*PublishResult, error) {
	h := http.Header{}
	for _, o := range opts {
		o(h)
	}
	var out PublishResult
	status, err := c.do(ctx, "POST", tenantPath(tenant, "events"), e, &out, h)
	out.Replayed = status == http.StatusOK
	return &out, err
}

// PublishBatch publishes up to 1,000 events, all or none.
func (c *Client) PublishBatch(ctx context.Context, tenant string, events []Event) ([]PublishResult, error) {
	var out struct {
		Events []PublishResult `json:"events"`
	}
	_, err := c.do(ctx, "POST", tenantPath(tenant, "events", "batch"), map[string]any{"events": events}, &out, nil)
	return out.Events, err
}

// GetEvent fetches an event.
func (c *Client) GetEvent(ctx context.Context, tenant, id string) (*herald.Event, error) {
	var out herald.Event
	_, err := c.do(ctx, "GET", tenantPath(tenant, "events", id), nil, &out, nil)
	return &out, err
}

// EventQuery filters an event list.
type EventQuery struct {
	Type, Source, Cursor string
	Since, Until         time.Time
	Limit                int
}

// ListEvents lists events, newest first.
func (c *Client) ListEvents(ctx context.Context, tenant string, q EventQuery) (*List[herald.Event], error) {
	v := url.Values{}
	set(v, "type", q.Type)
	set(v, "source", q.Source)
	setCommon(v, q.Cursor, q.Limit, q.Since, q.Until)
	var out List[herald.Event]
	_, err := c.do(ctx, "GET", tenantPath(tenant, "events")+query(v), nil, &out, nil)
	return &out, err
}

// ChannelInput creates or changes a channel; nil fields are left as they are.
type ChannelInput struct {
	Name            *string           `json:"name,omitempty"`
	URL             *string           `json:"url,omitempty"`
	Policy          any               `json:"policy,omitempty"` // "standard", "postback" or a herald.Policy
	TimeoutS        *int              `json:"timeout_s,omitempty"`
	Headers         map[string]string `json:"headers,omitempty"`
	Enabled         *bool             `json:"enabled,omitempty"`
	MaxInFlight     *int              `json:"max_in_flight,omitempty"`
	RateLimitPerSec *float64          `json:"rate_limit_per_sec,omitempty"`
}

// ChannelCreated is a new channel with its signing secret.
type ChannelCreated struct {
	herald.Channel
	Secret string `json:"secret"`
}

// CreateChannel creates a webhook channel.
func (c *Client) CreateChannel(ctx context.Context, tenant string, in ChannelInput) (*ChannelCreated, error) {
	var out ChannelCreated
	_, err := c.do(ctx, "POST", tenantPath(tenant, "channels"), in, &out, nil)
	return &out, err
}

// UpdateChannel changes a channel.
func (c *Client) UpdateChannel(ctx context.Context, tenant, id string, in ChannelInput) (*herald.Channel, error) {
	var out herald.Channel
	_, err := c.do(ctx, "PATCH", tenantPath(tenant, "channels", id), in, &out, nil)
	return &out, err
}

// DeleteChannel deletes a channel and its subscriptions.
func (c *Client) DeleteChannel(ctx context.Context, tenant, id string) error {
	_, err := c.do(ctx, "DELETE", tenantPath(tenant, "channels", id), nil, nil, nil)
	return err
}

// SubscriptionInput attaches a channel to event types and sources.
type SubscriptionInput struct {
	ChannelID  string   `json:"channel_id"`
	EventTypes []string `json:"event_types"`
	Sources    []string `json:"sources,omitempty"`
	Filter     string   `json:"filter,omitempty"`
}

// CreateSubscription creates a subscription.
func (c *Client) CreateSubscription(ctx context.Context, tenant string, in SubscriptionInput) (*herald.Subscription, error) {
	var out herald.Subscription
	_, err := c.do(ctx, "POST", tenantPath(tenant, "subscriptions"), in, &out, nil)
	return &out, err
}

// DeliveryQuery filters a delivery list.
type DeliveryQuery struct {
	Status                                herald.DeliveryStatus
	ChannelID, EventID, EventType, Cursor string
	Since, Until                          time.Time
	Limit                                 int
}

// ListDeliveries lists deliveries, newest first.
func (c *Client) ListDeliveries(ctx context.Context, tenant string, q DeliveryQuery) (*List[herald.Delivery], error) {
	v := url.Values{}
	set(v, "status", string(q.Status))
	set(v, "channel_id", q.ChannelID)
	set(v, "event_id", q.EventID)
	set(v, "event_type", q.EventType)
	setCommon(v, q.Cursor, q.Limit, q.Since, q.Until)
	var out List[herald.Delivery]
	_, err := c.do(ctx, "GET", tenantPath(tenant, "deliveries")+query(v), nil, &out, nil)
	return &out, err
}

// DeliveryDetail is a delivery with its attempts.
type DeliveryDetail struct {
	herald.Delivery
	AttemptLog []herald.Attempt `json:"attempt_log"`
}

// GetDelivery fetches a delivery with its attempt log.
func (c *Client) GetDelivery(ctx context.Context, tenant, id string) (*DeliveryDetail, error) {
	var out DeliveryDetail
	_, err := c.do(ctx, "GET", tenantPath(tenant, "deliveries", id), nil, &out, nil)
	return &out, err
}

// AttemptResult is the answer to a manual retry or a channel test.
type AttemptResult struct {
	Delivery herald.Delivery `json:"delivery"`
	Attempt  herald.Attempt  `json:"attempt"`
}

// RetryDelivery makes one immediate attempt of a finished delivery.
func (c *Client) RetryDelivery(ctx context.Context, tenant, id string) (*AttemptResult, error) {
	var out AttemptResult
	_, err := c.do(ctx, "POST", tenantPath(tenant, "deliveries", id, "retry"), nil, &out, nil)
	return &out, err
}

// RecoverChannel queues every failed delivery of a channel since a time again.
func (c *Client) RecoverChannel(ctx context.Context, tenant, channelID string, since time.Time) (int, error) {
	var out struct {
		Requeued int `json:"requeued"`
	}
	_, err := c.do(ctx, "POST", tenantPath(tenant, "channels", channelID, "recover"), map[string]time.Time{"since": since}, &out, nil)
	return out.Requeued, err
}

func set(v url.Values, k, val string) {
	if val != "" {
		v.Set(k, val)
	}
}

func setCommon(v url.Values, cursor string, limit int, since, until time.Time) {
	set(v, "cursor", cursor)
	if limit > 0 {
		v.Set("limit", fmt.Sprint(limit))
	}
	if !since.IsZero() {
		v.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		v.Set("until", until.UTC().Format(time.RFC3339Nano))
	}
}

func query(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}
