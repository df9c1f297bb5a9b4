package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestClaimPlansUseIndexes checks the plans of a claim's lookups by
// channel on a table that has seen many deliveries: 20,000 finished, and
// 2,000 pending over 40 channels, a few of them leased. With the claim's
// own settings, in the generic plans prepared statements settle on, none
// may read the whole table or use a bitmap scan: either made every claim
// read far more than its channels' leases (a bitmap scan, every entry that
// earlier versions of the rows left in the indexes), and a claim during a
// drain took 5–10 ms instead of 2–3.
func TestClaimPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if _, err := s.pool.Exec(ctx, `INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, next_attempt_at, lease_until, created_at, updated_at)
		SELECT 'dlv_' || lpad(g::text, 8, '0'), 'ten_1', 'evt_' || g, 'order.completed', 'ch_' || (g % 40),
			CASE WHEN g <= 20000 THEN 'succeeded' ELSE 'pending' END,
			CASE WHEN g <= 20000 THEN NULL ELSE now() - interval '1 minute' END,
			CASE WHEN g > 20000 AND g % 100 = 0 THEN now() + interval '1 minute' END,
			now(), now()
		FROM generate_series(1, 22000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE deliveries`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, sql, types, args string }{
		{"channels with due deliveries", dueChannelsSQL, "timestamptz, text[], int[], int[]", "now(), ARRAY['ch_1'], ARRAY[16], ARRAY[512]"},
		{"leases of locked channels", busySQL, "text[], timestamptz", "ARRAY['ch_1', 'ch_2'], now()"},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan := genericPlan(t, s, c.sql, c.types, c.args)
			if strings.Contains(plan, "Seq Scan on deliveries") || strings.Contains(plan, "Bitmap") {
				t.Errorf("plan reads the whole table or uses a bitmap scan:\n%s", plan)
			}
		})
	}
}

// TestClaimPlansOnNewTables checks the plans a claim settles on while its
// tables are still small, as they are after Herald is installed: a
// prepared statement keeps its generic plan until the table is analysed,
// which autovacuum does about once a minute, while a burst fills it by
// thousands of rows a second. A sequential scan planned for a few rows
// then read the whole table in every claim (up to 10 ms each in a latency
// run, p99 at 300 ms), in some runs and not others.
func TestClaimPlansOnNewTables(t *testing.T) {
	s := openStore(t)
	for _, c := range []struct{ name, sql, types, args string }{
		{"channels with due deliveries", dueChannelsSQL, "timestamptz, text[], int[], int[]", "now(), ARRAY['ch_1'], ARRAY[16], ARRAY[512]"},
		{"leases of locked channels", busySQL, "text[], timestamptz", "ARRAY['ch_1', 'ch_2'], now()"},
		{"leases set", setLeasesSQL, "text[], timestamptz[]", "ARRAY['dlv_1', 'dlv_2'], ARRAY[now(), now()]"},
		{"events read back", claimEventsSQL, "text[]", "ARRAY['evt_1', 'evt_2']"},
		{"candidates", claimCandidatesSQL, "text[], int[], int[], timestamptz, int", "ARRAY['ch_1'], ARRAY[16], ARRAY[0], now(), 128"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if plan := genericPlan(t, s, c.sql, c.types, c.args); strings.Contains(plan, "Seq Scan on deliveries") || strings.Contains(plan, "Seq Scan on events") {
				t.Errorf("plan reads the whole table:\n%s", plan)
			}
		})
	}
}

// genericPlan explains q's generic plan for args, under a claim's
// settings.
func genericPlan(t *testing.T, s *Store, q, types, args string) string {
	t.Helper()
	ctx := context.Background()
	var plan strings.Builder
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, set := range append(claimSettings(), `SET LOCAL plan_cache_mode = force_generic_plan`) {
			if _, err := tx.Exec(ctx, set); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `PREPARE q (`+types+`) AS `+q); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `EXPLAIN EXECUTE q(`+args+`)`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				rows.Close()
				return err
			}
			plan.WriteString(line + "\n")
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DEALLOCATE q`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return plan.String()
}
