package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/heraldhq/herald"
)

// The write path is a group commit in two stages that overlap:
//
//   - the writer goroutine runs every queued operation as it arrives, each in
//     its own savepoint of one open transaction, and commits that
//     transaction as soon as the syncer is free;
//   - the syncer flushes the write-ahead log to disk (fdatasync) and only
//     then answers the transaction's callers.
//
// SQLite itself therefore runs with synchronous=NORMAL (its commit writes
// the log without flushing it) and Herald does the flush a FULL commit
// would do, but off the writer: while one transaction's flush runs, the
// next transaction is already gathering and executing operations, and it
// commits the moment the flush ends. One flush acknowledges everything
// that arrived during the previous one, so the writer never waits for the
// disk and no caller is answered before its writes are on disk.
//
// What others may see: a transaction is visible to readers (and to claims)
// from its commit, a flush's time before its callers are answered. After a
// power loss, writes that were never acknowledged can be gone although a
// reader saw them; an acknowledged write never is.
//
// Not every write needs the flush. Those only the delivery loop relies on
// — claims, automatic attempts' results, released leases — are answered at
// their commit (writeLoose): if a power loss takes one back, a delivery is
// sent once more, which at-least-once allows (and SQLite releases every
// lease at start anyway). A transaction of such writes alone is not
// flushed at all; the next flush, or SQLite's next checkpoint, covers it.
// Waiting for the disk there held every delivery slot for two flushes per
// delivery. (Committing them at once instead of with the next group was
// measured too: more, smaller commits cost more than the wait saved.)
// A transaction of loose writes alone also waits until looseCommitGap has
// passed since the previous commit, gathering what else arrives.
//
// Each operation runs in a savepoint of its own, so one that fails is
// undone alone — except bare ones. A savepoint costs two statements and,
// worse, a copy of every page the operation changes that an earlier one in
// the transaction changed too, which with many publishes appending to the
// same pages was a tenth of the writer's time. Bare operations are those
// that fail only when the database does (a single event's publish, and
// the delivery loop's loose writes), and a failing database leaves the
// transaction suspect anyway: when one fails, the whole transaction is
// rolled back and every operation in it is answered unavailable, to be
// retried.

// looseCommitGap is the least time between a commit and the next one when
// that next one holds loose writes alone (a transaction with a durable
// write commits at once, as its callers wait for it). Every commit
// rewrites the last pages of each B-tree it touches, so in a burst, whose
// claims and results otherwise commit a few at a time, gathering them cut
// the log's write calls per delivery by about 1.2 and a burst event's CPU
// by about 5% (docs/benchmarks-log.md).
const looseCommitGap = time.Millisecond

// writeOp is one queued write.
type writeOp struct {
	fn   func(tx *wtx) error
	done chan error
	// loose ops are answered at commit, before the flush.
	loose bool
	// bare ops run without a savepoint (see above).
	bare bool
	// gather ops (bare too) may leave their rows in the transaction, to
	// be inserted with the next ops' (rows.go).
	gather bool
}

// group is the transaction gathering operations.
type group struct {
	w       *wtx
	ops     []writeOp // operations whose writes are in the transaction
	durable bool      // some op waits for the flush: commit at once
}

// writeLoop runs operations and commits them; see the top of this file.
func (s *Store) writeLoop() {
	defer close(s.done)
	toSync := make(chan *group)
	synced := make(chan struct{})
	go s.syncLoop(toSync, synced)
	defer close(toSync)
	var g *group
	syncing := false
	var lastCommit time.Time
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	gapSet := false
	for {
		// Run everything already waiting before deciding to commit.
		if g == nil || len(g.ops) < maxBatch {
			select {
			case op := <-s.ops:
				g = s.run(g, op)
				continue
			default:
			}
		}
		if g != nil && !syncing {
			wait := s.looseGap - time.Since(lastCommit)
			if g.durable || wait <= 0 || len(g.ops) >= maxBatch {
				if s.commitGroup(g) {
					toSync <- g
					syncing = true
				}
				lastCommit = time.Now()
				g = nil
				continue
			}
			if !gapSet {
				gap.Reset(wait)
				gapSet = true
			}
		}
		ops := s.ops
		if g != nil && len(g.ops) >= maxBatch {
			ops = nil // full: wait for the flush
		}
		var gapC <-chan time.Time
		if gapSet {
			gapC = gap.C
		}
		select {
		case <-gapC:
			gapSet = false
		case op := <-ops:
			g = s.run(g, op)
		case <-synced:
			syncing = false
		case <-s.stop:
			if syncing {
				<-synced
			}
			s.finish(g)
			return
		}
	}
}

// finish runs and commits what is queued at shutdown, then flushes it.
func (s *Store) finish(g *group) {
queued:
	for {
		select {
		case op := <-s.ops:
			g = s.run(g, op)
		default:
			break queued
		}
	}
	if g != nil && s.commitGroup(g) {
		s.answer(g, s.flush())
	}
}

// run executes op inside g, beginning g if needed. A failed op is
// answered at once (a failed bare one abandons g); after a failed flush,
// every op is refused without running.
func (s *Store) run(g *group, op writeOp) *group {
	if err := s.flushErr.Load(); err != nil {
		op.done <- *err
		return g
	}
	if g == nil {
		tx, err := s.w.BeginTx(context.Background(), nil)
		if err != nil {
			op.done <- fmt.Errorf("%w: begin: %v", herald.ErrUnavailable, err)
			return nil
		}
		g = &group{w: &wtx{tx: tx, s: s}}
	}
	if !op.gather {
		if err := g.w.insertGathered(); err != nil {
			s.abandon(g, op, fmt.Errorf("%w: %v", herald.ErrUnavailable, err))
			return nil
		}
	}
	if err := apply(g.w, op); err != nil {
		if op.bare {
			s.abandon(g, op, err)
			return nil
		}
		op.done <- err
		return g
	}
	g.ops = append(g.ops, op)
	g.durable = g.durable || !op.loose
	return g
}

// apply runs op's writes in w: in a savepoint of its own, so a failure
// undoes them alone, unless op is bare.
func apply(w *wtx, op writeOp) error {
	if op.bare {
		return op.fn(w)
	}
	if _, err := w.Exec("SAVEPOINT op"); err != nil {
		return err
	}
	if err := op.fn(w); err != nil {
		if _, rerr := w.Exec("ROLLBACK TO op"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		_, _ = w.Exec("RELEASE op")
		return err
	}
	_, err := w.Exec("RELEASE op")
	return err
}

// abandon rolls g back after its bare op failed: op gets its error, the
// others in g are told to retry.
func (s *Store) abandon(g *group, op writeOp, err error) {
	rerr := g.w.tx.Rollback()
	op.done <- err
	s.answer(g, fmt.Errorf("%w: a write sharing the transaction failed (%v), so it was rolled back; retry", herald.ErrUnavailable, errors.Join(err, rerr)))
}

// commitGroup commits g and answers its loose ops; it reports whether
// there is anything left to flush and answer.
func (s *Store) commitGroup(g *group) bool {
	if len(g.ops) == 0 {
		_ = g.w.tx.Rollback()
		return false
	}
	if err := g.w.insertGathered(); err != nil {
		_ = g.w.tx.Rollback()
		s.answer(g, fmt.Errorf("%w: insert: %v", herald.ErrUnavailable, err))
		return false
	}
	if err := g.w.tx.Commit(); err != nil {
		s.answer(g, fmt.Errorf("%w: commit: %v", herald.ErrUnavailable, err))
		return false
	}
	if !s.flushWAL {
		s.answer(g, nil)
		return false
	}
	durable := g.ops[:0]
	for _, op := range g.ops {
		if op.loose {
			op.done <- nil
		} else {
			durable = append(durable, op)
		}
	}
	g.ops = durable
	return len(durable) > 0
}

func (s *Store) syncLoop(in <-chan *group, out chan<- struct{}) {
	for g := range in {
		s.answer(g, s.flush())
		out <- struct{}{}
	}
}

func (s *Store) answer(g *group, err error) {
	for _, op := range g.ops {
		op.done <- err
	}
}

// flush puts the write-ahead log on disk when Herald, not SQLite, makes
// commits durable. The file is opened each time: SQLite may remove and
// recreate it, and a descriptor kept from before would flush nothing.
// A failed flush fails every later write too (run refuses them): after
// one, the kernel may have dropped the pages it could not write, and a
// later flush that succeeds proves nothing about them.
func (s *Store) flush() error {
	if err := s.flushErr.Load(); err != nil {
		return *err
	}
	err := s.fdatasync(s.walPath)
	if err != nil {
		err = fmt.Errorf("%w: flushing the write-ahead log failed (%v); restart Herald once the disk is healthy", herald.ErrUnavailable, err)
		s.flushErr.Store(&err)
		s.log.Error("write-ahead log flush failed; refusing further writes", "err", err)
	}
	return err
}

func fdatasync(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
