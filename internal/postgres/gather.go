package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/batch"
)

// maxGathered bounds the events of one gathered publish batch.
const maxGathered = 1000

// The publishes without idempotency keys that arrive while one write runs
// are written together in the next (Store.gather), as one batch and so
// one implicit transaction: PostgreSQL then commits (and flushes) once for
// many requests instead of once each. A burst's publishes were a
// transaction each, and PostgreSQL spent most of its CPU in the system
// calls of those round trips and commits. If a statement of a gathered
// batch fails, each request's publications are written alone, so one bad
// request cannot fail the others, and each stays whole or not at all.

type gathered struct {
	pubs       []herald.Publication
	results    []herald.PublishResult
	deliveries int
	err        error
	done       chan struct{}
}

func newGatherer(s *Store) *batch.Writer[*gathered] {
	return batch.New(maxGathered, func(g *gathered) int { return len(g.pubs) }, s.writeGathered)
}

// publishGathered writes pubs with those of other requests and returns
// once they are committed (or ctx ends: they may still be).
func (s *Store) publishGathered(ctx context.Context, pubs []herald.Publication) ([]herald.PublishResult, int, error) {
	g := &gathered{pubs: pubs, done: make(chan struct{})}
	s.gather.Add(g)
	select {
	case <-g.done:
		return g.results, g.deliveries, g.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// writeGathered writes a gathered batch, or each of its requests alone
// if it fails. The writes do not end with a request that stops waiting.
func (s *Store) writeGathered(batch []*gathered) {
	ctx := context.Background()
	b := &pgx.Batch{}
	for _, g := range batch {
		g.results, g.deliveries = queuePublications(b, g.pubs)
	}
	err := s.pool.SendBatch(ctx, b).Close()
	// Only a statement's error can be one request's doing; losing the
	// connection or the server fails them all alike.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(batch) > 1 {
		for _, g := range batch {
			g.results, g.deliveries, g.err = s.publishBatch(ctx, g.pubs)
			close(g.done)
		}
		return
	}
	err = mapErr(err)
	for _, g := range batch {
		if g.err = err; err != nil {
			g.results, g.deliveries = nil, 0
		}
		close(g.done)
	}
}
