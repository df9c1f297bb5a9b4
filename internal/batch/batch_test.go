package batch

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBatchesKeepOrderAndBound: items added while a write runs go to the
// next write, in order, in batches no larger than max by size; an item
// larger than max goes alone.
func TestBatchesKeepOrderAndBound(t *testing.T) {
	var mu sync.Mutex
	var batches [][]int
	hold := make(chan struct{})
	done := make(chan struct{}, 64)
	w := New(10, func(n int) int { return n }, func(b []int) {
		if b[0] == 1 {
			<-hold // the first write runs until every other item is queued
		}
		mu.Lock()
		batches = append(batches, slices.Clone(b))
		mu.Unlock()
		for range b {
			done <- struct{}{}
		}
	})
	items := []int{1, 4, 5, 2, 12, 3, 3, 3}
	w.Add(items[0])
	for w.Waiting() != 0 { // taken by the first write
		time.Sleep(time.Millisecond)
	}
	for _, n := range items[1:] {
		w.Add(n)
	}
	if got := w.Waiting(); got != len(items)-1 {
		t.Fatalf("%d items wait, want %d", got, len(items)-1)
	}
	close(hold)
	for range items {
		<-done
	}
	want := [][]int{{1}, {4, 5}, {2}, {12}, {3, 3, 3}}
	mu.Lock()
	defer mu.Unlock()
	if !slices.EqualFunc(batches, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
}
