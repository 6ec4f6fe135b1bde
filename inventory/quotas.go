package inventory

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Quota is a registry's request quota as a run measured it: requests per
// second Host accepted (in Project, on a host whose quota is per project;
// "" for the host's own) when it last refused.
type Quota struct {
	Host, Project string
	QPS           float64
	MeasuredAt    time.Time
}

// maxQuotas bounds the quotas one read returns (a host keeps at most 4,096
// projects' paces; a run reads 23 hosts).
const maxQuotas = 100000

// Quotas returns the quotas measured at or after since, by host and project.
func (d *DB) Quotas(ctx context.Context, since time.Time) ([]Quota, error) {
	rows, err := d.cached().QueryContext(ctx, `SELECT host, project, qps, measured_at FROM host_quotas
		WHERE julianday(measured_at) >= julianday(?) ORDER BY host, project LIMIT ?`, since.UTC().Format(time.RFC3339Nano), maxQuotas)
	if err != nil {
		return nil, fmt.Errorf("read host quotas: %w", err)
	}
	defer rows.Close()
	var out []Quota
	for rows.Next() {
		var q Quota
		var at string
		if err := rows.Scan(&q.Host, &q.Project, &q.QPS, &at); err != nil {
			return nil, fmt.Errorf("read host quotas: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return nil, fmt.Errorf("read host quota of %s %s: measured_at %q: %w", q.Host, q.Project, at, err)
		}
		q.MeasuredAt = t
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read host quotas: %w", err)
	}
	return out, nil
}

// RecordQuotas stores quotas in one transaction, each replacing what was
// kept for its host and project. A quota that is not a positive, finite
// rate is an error and nothing is stored.
func (d *DB) RecordQuotas(ctx context.Context, quotas []Quota) error {
	if len(quotas) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record host quotas: %w", err)
	}
	defer tx.Rollback()
	for _, q := range quotas {
		if q.Host == "" || !(q.QPS > 0) || math.IsInf(q.QPS, 0) {
			return fmt.Errorf("record host quota of %q %q: %v requests/s is no quota", q.Host, q.Project, q.QPS)
		}
		at := q.MeasuredAt
		if at.IsZero() {
			at = d.Now()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_quotas(host, project, qps, measured_at) VALUES (?, ?, ?, ?)
			ON CONFLICT(host, project) DO UPDATE SET qps = excluded.qps, measured_at = excluded.measured_at`,
			q.Host, q.Project, q.QPS, at.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("record host quota of %s %s: %w", q.Host, q.Project, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record host quotas: %w", err)
	}
	return nil
}
