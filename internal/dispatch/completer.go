package dispatch

import (
	"context"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/batch"
)

// maxCompletionBatch bounds one write of attempt results.
const maxCompletionBatch = 1000

// completer records attempt results in batches: the results that arrive
// while one write is running go together in the next, so a busy dispatcher
// pays one commit for many deliveries instead of one each.
type completer struct {
	store  herald.DeliveryStore
	writer *batch.Writer[*pendingCompletion]
}

type pendingCompletion struct {
	c    herald.Completion
	done chan error
}

func newCompleter(store herald.DeliveryStore) *completer {
	w := &completer{store: store}
	w.writer = batch.New(maxCompletionBatch, nil, w.write)
	return w
}

// complete records c and returns once it is stored.
func (w *completer) complete(c herald.Completion) error {
	p := &pendingCompletion{c: c, done: make(chan error, 1)}
	w.writer.Add(p)
	return <-p.done
}

// behind reports whether a full batch already waits for the write in
// progress: results come in faster than the store records them.
func (w *completer) behind() bool {
	return w.writer.Waiting() >= maxCompletionBatch
}

// write stores a batch; if the batch fails, each is tried alone so one bad
// result cannot fail the others.
func (w *completer) write(batch []*pendingCompletion) {
	cs := make([]herald.Completion, len(batch))
	for i, p := range batch {
		cs[i] = p.c
	}
	// Results are written whatever happens to the requests that made them.
	ctx := context.Background()
	err := w.store.CompleteDeliveries(ctx, cs)
	if err == nil || len(batch) == 1 {
		for _, p := range batch {
			p.done <- err
		}
		return
	}
	for _, p := range batch {
		p.done <- w.store.CompleteDeliveries(ctx, []herald.Completion{p.c})
	}
}
