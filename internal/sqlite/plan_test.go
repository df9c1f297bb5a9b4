package sqlite

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestIndexedQueries: the statements that look for a few deliveries among
// many seek to them in the indexes that hold only those: failing a
// channel's pending deliveries and recovering its failed ones, not
// through the channel's whole log (deliveries_channel); and the leases,
// at start and when counted, which no index holds on their own.
func TestIndexedQueries(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, tc := range []struct{ name, sql, index string }{
		{"fail pending", failPendingSQL, "deliveries_pending"},
		{"recover", recoverSQL, "deliveries_failed"},
		{"release automatic leases", releaseAutoSQL, "deliveries_pending"},
		{"fail manual attempts", releaseManualSQL, "deliveries_manual"},
		{"count leases", leasesSQL, "deliveries_pending"},
		{"count leases", leasesSQL, "deliveries_manual"},
	} {
		args := make([]any, strings.Count(tc.sql, "?"))
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		// A full scan of a partial index reads only what it holds.
		if p := strings.Join(plan, "; "); !regexp.MustCompile(`USING (COVERING )?INDEX ` + tc.index + `\b`).MatchString(p) {
			t.Errorf("%s: plan %q does not use %s", tc.name, p, tc.index)
		}
	}
}
