package inventory

import (
	"context"
	"fmt"
	"strings"
)

// RunStats is what a sync run did.
type RunStats struct {
	Repositories     int
	Tags             int
	ManifestsFetched int
	Requests         int64
	Errors           []string
}

// StartRun records the start of a sync run and returns its id.
func (d *DB) StartRun(ctx context.Context, refs []string) (int64, error) {
	res, err := d.db.ExecContext(ctx, `INSERT INTO sync_runs(started_at, refs) VALUES (?, ?)`, d.now(), strings.Join(refs, " "))
	if err != nil {
		return 0, fmt.Errorf("record sync run: %w", err)
	}
	return res.LastInsertId()
}

// FinishRun records the end of a sync run.
func (d *DB) FinishRun(ctx context.Context, id int64, s RunStats) error {
	_, err := d.db.ExecContext(ctx, `UPDATE sync_runs SET finished_at = ?, repositories = ?, tags = ?, manifests_fetched = ?, requests = ?, errors = ? WHERE id = ?`,
		d.now(), s.Repositories, s.Tags, s.ManifestsFetched, s.Requests, strings.Join(s.Errors, "\n"), id)
	if err != nil {
		return fmt.Errorf("record sync run %d: %w", id, err)
	}
	return nil
}
