package promote

import (
	"context"

	"github.com/cipdev/cip/internal/batch"
	"github.com/cipdev/cip/inventory"
)

// recordBatch caps one inventory transaction of finished copies: large
// enough that a busy run commits a few times a second, small enough that a
// transaction holds SQLite's write lock for milliseconds.
const recordBatch = 256

// recorder writes finished copies and tags to the inventory from one
// goroutine, a batch per transaction (inventory.RecordCopies): whatever
// finished while the previous batch was being committed. Copies never wait
// for the inventory; each is queued after it happened, and Promote waits
// for the queue to drain before it verifies and returns. A crash loses at
// most the queued records, which a rerun redoes.
type recorder struct {
	db    *inventory.DB
	runID int64
	ch    chan inventory.Copy
	done  chan struct{}
	err   error // the first failed batch (read after done)
}

func newRecorder(db *inventory.DB, runID int64) *recorder {
	r := &recorder{db: db, runID: runID, ch: make(chan inventory.Copy, 4*recordBatch), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *recorder) loop() {
	defer close(r.done)
	for c := range r.ch {
		copies := batch.Next(r.ch, c, recordBatch, 0)
		// The copies happened: record them even if the run is being cancelled.
		if _, err := r.db.RecordCopies(context.Background(), r.runID, copies); err != nil && r.err == nil {
			r.err = err
		}
	}
}

// add queues one finished copy (tag empty) or tag.
func (r *recorder) add(repo, digest, tag string) {
	r.ch <- inventory.Copy{Repository: repo, Digest: digest, Tag: tag}
}

// close drains the queue and returns the first write error.
func (r *recorder) close() error {
	close(r.ch)
	<-r.done
	return r.err
}
