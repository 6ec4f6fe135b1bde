package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// AuditEvent is one registry event judged by `cip audit serve`, as stored
// in audit_events (migration 0010).
type AuditEvent struct {
	Source     string    // distribution or pubsub
	EventID    string    // the sender's id, unique per source
	ReceivedAt time.Time // set by RecordAuditEvents when zero
	OccurredAt string    // as the sender gave it; "" when not given
	Action     string    // push or delete
	Registry   string    // host[:port]
	Repository string    // host[:port]/path
	Digest     string
	Tag        string
	Verdict    string // VERIFIED or REJECTED
	Reason     string
	Detail     string
}

// RecordAuditEvents stores events in one transaction and reports, for each,
// whether it was new: an event whose (source, event id) is already stored
// (a redelivery) is left as it was and reported false, so that a caller
// counts each event once however often its sender delivers it.
func (d *DB) RecordAuditEvents(ctx context.Context, events []AuditEvent) ([]bool, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record audit events: %w", err)
	}
	defer tx.Rollback()
	now := d.Now().UTC()
	inserted := make([]bool, len(events))
	for i, e := range events {
		at := e.ReceivedAt
		if at.IsZero() {
			at = now
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO audit_events(source, event_id, received_at, occurred_at, action, registry, repository, digest, tag, verdict, reason, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, event_id) DO NOTHING`,
			e.Source, e.EventID, at.UTC().Format(time.RFC3339Nano), e.OccurredAt, e.Action, e.Registry, e.Repository, e.Digest, e.Tag, e.Verdict, e.Reason, e.Detail)
		if err != nil {
			return nil, fmt.Errorf("record audit event %s %s: %w", e.Source, e.EventID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("record audit event %s %s: %w", e.Source, e.EventID, err)
		}
		inserted[i] = n == 1
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("record audit events: %w", err)
	}
	return inserted, nil
}

// AuditFilter selects stored audit events; the zero value selects all.
type AuditFilter struct {
	Verdict string    // VERIFIED or REJECTED; "" for both
	Since   time.Time // received at or after; zero for all
	Limit   int       // at most this many (the oldest first); 0 for no limit
}

// AuditEvents lists stored audit events in the order they were received.
func (d *DB) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var where []string
	var args []any
	if f.Verdict != "" {
		where = append(where, "verdict = ?")
		args = append(args, f.Verdict)
	}
	if !f.Since.IsZero() {
		where = append(where, "received_at >= ?")
		args = append(args, f.Since.UTC().Format(time.RFC3339Nano))
	}
	q := `SELECT source, event_id, received_at, occurred_at, action, registry, repository, digest, tag, verdict, reason, detail FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at string
		if err := rows.Scan(&e.Source, &e.EventID, &at, &e.OccurredAt, &e.Action, &e.Registry, &e.Repository, &e.Digest, &e.Tag, &e.Verdict, &e.Reason, &e.Detail); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		if e.ReceivedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("list audit events: received_at %q: %w", at, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

// Parents returns the digests of the indexes (manifest lists, OCI indexes)
// the inventory knows to list digest as a child, sorted; none when it knows
// of no such index.
func (d *DB) Parents(ctx context.Context, digest string) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT DISTINCT parent_digest FROM manifest_children WHERE child_digest = ? ORDER BY parent_digest`, digest)
	if err != nil {
		return nil, fmt.Errorf("read parents of %s: %w", digest, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("read parents of %s: %w", digest, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read parents of %s: %w", digest, err)
	}
	return out, nil
}

// maxSubjects bounds the subjects Subjects returns for one digest: a
// referrer names one subject (its subject field) and registries list it
// under that one; only a corrupt or hostile registry could have it
// recorded under more, and audit's walk stops at a thousand digests
// anyway.
const maxSubjects = 1000

// Subjects returns what digest refers to in repo, sorted: the subject its
// manifest names (manifests.subject_digest: the bytes say so wherever the
// inventory got them, a source or this repository) and every subject
// repo's referrers rows give it, however found (the referrers API, the
// referrers tag schema, cosign's tags). known reports whether the
// inventory holds the manifest at all (a referrers row implies it): when
// it does not, its subject field is unknown here, and only its bytes tell.
func (d *DB) Subjects(ctx context.Context, repo, digest string) (subjects []string, known bool, err error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT m.subject_digest FROM manifests m WHERE m.digest = ?2
		UNION
		SELECT f.subject_digest FROM referrers f JOIN repositories r ON r.id = f.repository_id
		WHERE r.name = ?1 AND f.referrer_digest = ?2
		ORDER BY 1 LIMIT ?3`, repo, digest, maxSubjects+1)
	if err != nil {
		return nil, false, fmt.Errorf("read subjects of %s in %s: %w", digest, repo, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, false, fmt.Errorf("read subjects of %s in %s: %w", digest, repo, err)
		}
		known = true
		if s.Valid && len(subjects) < maxSubjects {
			subjects = append(subjects, s.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read subjects of %s in %s: %w", digest, repo, err)
	}
	return subjects, known, nil
}

// TagHistoryEntry is one row of tag_history.
type TagHistoryEntry struct {
	Repository string
	Tag        string
	Old, New   string // "" when added / removed
	Change     string // added, moved, removed
	At         string // RFC 3339 UTC
}

// LatestTagChanges returns, for every (repository, tag) equal to or below
// prefix that the tag history mentions, its latest change, ordered by
// repository and tag.
func (d *DB) LatestTagChanges(ctx context.Context, prefix string) ([]TagHistoryEntry, error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT h.repository, h.tag, COALESCE(h.old_digest, ''), COALESCE(h.new_digest, ''), h.change, h.at
		FROM tag_history h
		WHERE `+underSQL("h.repository")+`
		  AND h.id = (SELECT MAX(l.id) FROM tag_history l WHERE l.repository = h.repository AND l.tag = h.tag)
		ORDER BY h.repository, h.tag`, underArgs(prefix)...)
	if err != nil {
		return nil, fmt.Errorf("read tag history of %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []TagHistoryEntry
	for rows.Next() {
		var e TagHistoryEntry
		if err := rows.Scan(&e.Repository, &e.Tag, &e.Old, &e.New, &e.Change, &e.At); err != nil {
			return nil, fmt.Errorf("read tag history of %s: %w", prefix, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tag history of %s: %w", prefix, err)
	}
	return out, nil
}
