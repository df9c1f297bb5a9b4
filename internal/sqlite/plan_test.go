package sqlite

import (
	"context"
	"strings"
	"testing"
)

// TestChannelWritesUseIndexes: failing a channel's pending deliveries and
// recovering its failed ones seek to them in the indexes that hold only
// those, not through the channel's whole log (deliveries_channel).
func TestChannelWritesUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct{ name, sql, index string }{
		{"fail pending", failPendingSQL, "deliveries_pending"},
		{"recover", recoverSQL, "deliveries_failed"},
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
		if p := strings.Join(plan, "; "); !strings.Contains(p, "USING INDEX "+tc.index+" ") {
			t.Errorf("%s: plan %q does not search %s", tc.name, p, tc.index)
		}
	}
}
