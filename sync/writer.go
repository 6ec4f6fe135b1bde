package sync

import (
	"context"
	"time"

	"github.com/cipdev/cip/internal/batch"
	"github.com/cipdev/cip/inventory"
)

// writeBatch caps the repositories of one inventory transaction: a batch
// holds SQLite's write lock for milliseconds.
const writeBatch = 64

// writeLinger is how long a batch waits for more finished crawls after its
// first: crawls finish a few milliseconds apart, and a commit (its WAL
// frames) costs more than the wait.
const writeLinger = 10 * time.Millisecond

// writer writes finished crawls to the inventory from one goroutine, a
// batch per transaction (inventory.WriteRepositories, each repository in
// its own savepoint): whatever repositories finished while the previous
// batch committed. A crawl of many small repositories then costs a few
// commits instead of one per repository, which was most of cip's own CPU
// in a crawl (WAL frames written per commit). Each crawl waits for its
// own result, so a repository is reported synced only once it is written.
type writer struct {
	db    *inventory.DB
	runID int64
	ch    chan writeRequest
	done  chan struct{}
}

type writeRequest struct {
	st    inventory.RepositoryState
	reply chan inventory.WriteResult
}

func newWriter(db *inventory.DB, runID int64) *writer {
	w := &writer{db: db, runID: runID, ch: make(chan writeRequest, writeBatch), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *writer) loop() {
	defer close(w.done)
	for r := range w.ch {
		reqs := batch.Next(w.ch, r, writeBatch, writeLinger)
		sts := make([]inventory.RepositoryState, len(reqs))
		for i, r := range reqs {
			sts[i] = r.st
		}
		// The reads happened: write them even if the run is being cancelled
		// (a cancelled crawl keeps what it finished).
		res, err := w.db.WriteRepositories(context.Background(), w.runID, sts)
		for i, r := range reqs {
			if err != nil {
				r.reply <- inventory.WriteResult{Err: err}
			} else {
				r.reply <- res[i]
			}
		}
	}
}

// write queues st and waits for its result.
func (w *writer) write(st inventory.RepositoryState) ([]inventory.TagChange, error) {
	reply := make(chan inventory.WriteResult, 1)
	w.ch <- writeRequest{st: st, reply: reply}
	r := <-reply
	return r.Changes, r.Err
}

// close stops the writer once the queue is empty.
func (w *writer) close() {
	close(w.ch)
	<-w.done
}
