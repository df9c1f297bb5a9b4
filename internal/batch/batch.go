// Package batch gathers what arrives while a write runs into the next
// write, so that a busy store pays one commit for many callers instead of
// one each, and an idle one writes a lone item at once.
package batch

import "sync"

// Writer passes queued items to its write function, in the order they
// were added, a batch at a time. A goroutine runs only while something is
// queued.
type Writer[T any] struct {
	write func([]T)
	size  func(T) int
	max   int

	mu      sync.Mutex
	queue   []T
	running bool
}

// New returns a Writer whose batches hold at most max by size (each item
// counts 1 when size is nil), or one item that alone is larger.
func New[T any](max int, size func(T) int, write func([]T)) *Writer[T] {
	if size == nil {
		size = func(T) int { return 1 }
	}
	return &Writer[T]{write: write, size: size, max: max}
}

// Add queues item for the next write. The caller waits for the write by
// its own means (a channel in the item).
func (w *Writer[T]) Add(item T) {
	w.mu.Lock()
	w.queue = append(w.queue, item)
	if !w.running {
		w.running = true
		go w.loop()
	}
	w.mu.Unlock()
}

// Waiting is how many items wait for a write that has not begun.
func (w *Writer[T]) Waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

func (w *Writer[T]) loop() {
	for {
		w.mu.Lock()
		n, total := 0, 0
		for n < len(w.queue) && (n == 0 || total+w.size(w.queue[n]) <= w.max) {
			total += w.size(w.queue[n])
			n++
		}
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
