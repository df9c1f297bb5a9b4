package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

// remoteFlags are the flags of commands that call a running Herald.
type remoteFlags struct {
	url, apiKey, tenant string
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "url", "http://127.0.0.1:8080", "Herald's base URL")
	fs.StringVar(&r.apiKey, "api-key", "", "API key: a tenant key or the operator key")
	fs.StringVar(&r.tenant, "tenant", "", "tenant id")
}

// remoteSetting: only the connection flags come from HERALD_URL,
// HERALD_API_KEY and HERALD_TENANT (or a config file).
func remoteSetting(name string) bool { return name == "url" || name == "api-key" || name == "tenant" }

// parse reads the command's flags and returns a client for them.
func (r *remoteFlags) parse(fs *flag.FlagSet, args []string) (*client.Client, error) {
	if err := parseFlags(fs, args, remoteSetting); err != nil {
		return nil, err
	}
	if r.apiKey == "" {
		return nil, errors.New("no API key: pass --api-key or set HERALD_API_KEY")
	}
	if r.tenant == "" {
		return nil, errors.New("no tenant: pass --tenant or set HERALD_TENANT")
	}
	return client.New(r.url, r.apiKey), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

const eventsUsage = `Usage: herald events <publish|list|get> [flags]`

func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, eventsUsage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("events "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var r remoteFlags
	r.register(fs)
	switch args[0] {
	case "publish":
		typ := fs.String("type", "", "event type, e.g. order.completed")
		source := fs.String("source", "", "source slug, e.g. shop (default api)")
		data := fs.String("data", "", "the event's data as JSON, or @file to read it from a file")
		key := fs.String("idempotency-key", "", "makes the publish safe to repeat for 24 h")
		c, err := r.parse(fs, args[1:])
		if err != nil {
			return err
		}
		raw := *data
		if file, ok := strings.CutPrefix(raw, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			raw = string(b)
		}
		if !json.Valid([]byte(raw)) {
			return errors.New("--data must be a JSON object (or @file holding one)")
		}
		var opts []client.PublishOption
		if *key != "" {
			opts = append(opts, client.WithIdempotencyKey(*key))
		}
		res, err := c.Publish(ctx, r.tenant, client.Event{Type: *typ, Source: *source, Data: json.RawMessage(raw)}, opts...)
		if err != nil {
			return err
		}
		return printJSON(stdout, res)
	case "list":
		typ := fs.String("type", "", "only this event type")
		limit := fs.Int("limit", 20, "how many")
		c, err := r.parse(fs, args[1:])
		if err != nil {
			return err
		}
		page, err := c.ListEvents(ctx, r.tenant, client.EventQuery{Type: *typ, Limit: *limit})
		if err != nil {
			return err
		}
		return printJSON(stdout, page)
	case "get":
		id := fs.String("id", "", "event id")
		c, err := r.parse(fs, args[1:])
		if err != nil {
			return err
		}
		e, err := c.GetEvent(ctx, r.tenant, *id)
		if err != nil {
			return err
		}
		return printJSON(stdout, e)
	}
	fmt.Fprintln(stderr, eventsUsage)
	return fmt.Errorf("unknown events command %q", args[0])
}

const deliveriesUsage = `Usage: herald deliveries <list|get|retry> [flags]`

func deliveriesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, deliveriesUsage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("deliveries "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var r remoteFlags
	r.register(fs)
	switch args[0] {
	case "list":
		status := fs.String("status", "", "pending, succeeded or failed")
		channel := fs.String("channel", "", "only this channel id")
		event := fs.String("event", "", "only this event id")
		limit := fs.Int("limit", 20, "how many")
		c, err := r.parse(fs, args[1:])
		if err != nil {
			return err
		}
		page, err := c.ListDeliveries(ctx, r.tenant, client.DeliveryQuery{Status: herald.DeliveryStatus(*status),
			ChannelID: *channel, EventID: *event, Limit: *limit})
		if err != nil {
			return err
		}
		return printJSON(stdout, page)
	case "get", "retry":
		id := fs.String("id", "", "delivery id")
		c, err := r.parse(fs, args[1:])
		if err != nil {
			return err
		}
		if args[0] == "get" {
			d, err := c.GetDelivery(ctx, r.tenant, *id)
			if err != nil {
				return err
			}
			return printJSON(stdout, d)
		}
		res, err := c.RetryDelivery(ctx, r.tenant, *id)
		if err != nil {
			return err
		}
		return printJSON(stdout, res)
	}
	fmt.Fprintln(stderr, deliveriesUsage)
	return fmt.Errorf("unknown deliveries command %q", args[0])
}
