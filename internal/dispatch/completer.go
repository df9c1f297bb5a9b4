package dispatch

import (
	"context"
	"sync"

	"github.com/heraldhq/herald"
)

// maxCompletionBatch bounds one write of attempt results.
const maxCompletionBatch = 1000

// completer records attempt results in batches: the results that arrive
// while one write is running go together in the next, so a busy dispatcher
// pays one commit for many deliveries instead of one each. A goroutine runs
// only while there is something to write.
type completer struct {
	store herald.DeliveryStore

	mu      sync.Mutex
	queue   []*pendingCompletion
	running bool
}

type pendingCompletion struct {
	c    herald.Completion
	done chan error
}

// complete records c and returns once it is stored.
func (w *completer) complete(c herald.Completion) error {
	p := &pendingCompletion{c: c, done: make(chan error, 1)}
	w.mu.Lock()
	w.queue = append(w.queue, p)
	if !w.running {
		w.running = true
		go w.loop()
	}
	w.mu.Unlock()
	return <-p.done
}

// behind reports whether a full batch already waits for the write in
// progress: results come in faster than the store records them.
func (w *completer) behind() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) >= maxCompletionBatch
}

func (w *completer) loop() {
	for {
		w.mu.Lock()
		n := min(len(w.queue), maxCompletionBatch)
		if n == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		batch := w.queue[:n:n]
		w.queue = w.queue[n:]
		w.mu.Unlock()
		w.write(batch)
	}
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
