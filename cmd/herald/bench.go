package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heraldhq/herald/internal/bench"
)

const benchUsage = `Usage: herald bench [SCENARIO…] [--events N] [--database URL] [--json]

Scenarios: raw burst publish fanout latency isolation backlog (default: all).
Everything runs on loopback and stops by itself.
`

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	var cfg bench.Config
	fs.IntVar(&cfg.Events, "events", 100_000, "events of burst and fanout (requests of raw, at least 100000)")
	fs.IntVar(&cfg.Backlog, "backlog", 1_000_000, "pending deliveries the backlog scenario drains")
	fs.IntVar(&cfg.Rate, "rate", 1000, "events per second of the latency scenario")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long the latency scenario publishes")
	fs.IntVar(&cfg.Concurrency, "concurrency", 512, "publishers at once (raw keeps 64 requests in flight)")
	fs.StringVar(&cfg.Database, "database", "", "postgres:// URL; empty runs on embedded SQLite in a temporary directory")
	asJSON := fs.Bool("json", false, "print results as JSON")
	// Scenarios may come before or after the flags.
	var names []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		names, args = append(names, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Scenarios = append(names, fs.Args()...)
	// Herald's own warnings say what bends the numbers (PostgreSQL
	// without autovacuum, for one); the rest of its log stays out.
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	results, err := bench.Run(ctx, cfg)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(results); e != nil {
			return e
		}
	} else {
		printResults(stdout, results)
	}
	if errors.Is(err, bench.ErrLost) {
		return fmt.Errorf("benchmark failed its checks: %w", err)
	}
	return err
}

func printResults(w io.Writer, rs []bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tevents\tdeliveries\tack/s\tack x raw\tdelivered/s\tx raw\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tpeak RSS MiB\tCPU µs/delivery\tlost\tdup\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.3f\t%.0f\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.0f\t%d\t%d\t\n", r.Scenario, r.Events, r.Deliveries,
			r.AcknowledgedPerSec, r.AckRatioToRaw, r.DeliveredPerSec, r.RatioToRaw, r.P50ms, r.P99ms, r.P999ms, r.Maxms, r.PeakRSSBytes>>20, r.CPUPerDeliveryUS, r.Lost, r.Duplicates)
	}
	tw.Flush()
	for _, r := range rs {
		if r.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, r.Note)
		}
	}
	if len(rs) > 0 { // every result names the same machine
		fmt.Fprintf(w, "machine: %s\n", rs[0].Machine)
	}
}
