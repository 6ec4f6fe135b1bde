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

// writeRequest is a finished crawl to write (st), or manifests a crawl
// fetched to record ahead of their repository (ms, when set).
type writeRequest struct {
	st    inventory.RepositoryState
	ms    []*inventory.Manifest
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
		// Manifests are written at once: their crawls wait for the commit
		// with nothing else to send, so lingering would only stall them.
		linger := writeLinger
		if r.ms != nil {
			linger = 0
		}
		reqs := batch.Next(w.ch, r, writeBatch, linger)
		// Manifests first, in one transaction: a crawl queues its
		// repository only after its manifests were recorded, so they never
		// need to wait for it.
		var ms []*inventory.Manifest
		var sts []inventory.RepositoryState
		var repos []writeRequest
		for _, r := range reqs {
			if r.ms != nil {
				ms = append(ms, r.ms...)
				continue
			}
			sts = append(sts, r.st)
			repos = append(repos, r)
		}
		// The reads happened: write them even if the run is being cancelled
		// (a cancelled crawl keeps what it finished).
		if len(ms) > 0 {
			err := w.db.InsertManifests(context.Background(), ms)
			for _, r := range reqs {
				if r.ms != nil {
					r.reply <- inventory.WriteResult{Err: err}
				}
			}
		}
		if len(sts) == 0 {
			continue
		}
		res, err := w.db.WriteRepositories(context.Background(), w.runID, sts)
		for i, r := range repos {
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

// manifests records ms (image manifests a crawl fetched) and waits for
// the commit.
func (w *writer) manifests(ctx context.Context, ms []*inventory.Manifest) error {
	reply := make(chan inventory.WriteResult, 1)
	select {
	case w.ch <- writeRequest{ms: ms, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	return (<-reply).Err
}

// close stops the writer once the queue is empty.
func (w *writer) close() {
	close(w.ch)
	<-w.done
}
