package inventory

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cipdev/cip/internal/digest"
)

// childrenChunk bounds the digests one ManifestChildren statement reads:
// a level of a look-up over a whole staging tree is thousands of digests,
// and one statement per few hundred keeps each read short.
const childrenChunk = 500

// ManifestChildren returns, for each of digests the inventory has, the
// digests of its children in order (none for an image manifest), read
// from its stored bytes after they verify as the digest: one statement
// per chunk of digests instead of a Manifest read each, for walks over
// index trees (sync.Referrers) that need only the children. Digests whose
// bytes do not verify or parse are in corrupt (Manifest reads them as a
// *CorruptError, with the reason); digests the inventory lacks are in
// neither.
func (d *DB) ManifestChildren(ctx context.Context, digests []string) (children map[string][]string, corrupt map[string]bool, err error) {
	children, corrupt = map[string][]string{}, map[string]bool{}
	for i := 0; i < len(digests); i += childrenChunk {
		part, err := json.Marshal(digests[i:min(i+childrenChunk, len(digests))])
		if err != nil {
			return nil, nil, fmt.Errorf("read manifests' children: %w", err)
		}
		if err := d.manifestChildren(ctx, string(part), children, corrupt); err != nil {
			return nil, nil, err
		}
	}
	return children, corrupt, nil
}

func (d *DB) manifestChildren(ctx context.Context, digests string, children map[string][]string, corrupt map[string]bool) error {
	rows, err := d.cached().QueryContext(ctx, `SELECT digest, media_type, raw FROM manifests WHERE digest IN (SELECT value FROM json_each(?))`, digests)
	if err != nil {
		return fmt.Errorf("read manifests' children: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dg, mediaType string
		var raw []byte
		if err := rows.Scan(&dg, &mediaType, &raw); err != nil {
			return fmt.Errorf("read manifests' children: %w", err)
		}
		if digest.VerifyManifest(dg, mediaType, raw) != nil {
			corrupt[dg] = true
			continue
		}
		m, err := ParseManifest(dg, mediaType, raw)
		if err != nil {
			corrupt[dg] = true
			continue
		}
		cs := make([]string, len(m.Children))
		for i, c := range m.Children {
			cs[i] = c.Digest
		}
		children[dg] = cs
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read manifests' children: %w", err)
	}
	return nil
}
