package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// ManifestReader reads repo@digest from its registry, the bytes checked
// against digest and capped in size (registry.Client.GetManifest's
// contract; LiveManifests is one).
type ManifestReader func(ctx context.Context, repo, digest string) (registry.Manifest, error)

// LiveManifests reads manifests with client.GetManifest.
func LiveManifests(client *registry.Client) ManifestReader {
	return func(ctx context.Context, repo, digest string) (registry.Manifest, error) {
		r, err := client.ParseRepository(repo)
		if err != nil {
			return registry.Manifest{}, err
		}
		return client.GetManifest(ctx, r, digest)
	}
}

// Bounds on the manifests the server reads from a registry to judge one
// request's events.
const (
	// maxLiveReadsPerEvent: the event's own manifest and, up a chain of
	// referrers the inventory does not know yet (an attestation and the
	// signature on it, pushed a moment apart), one per level of referrers
	// cip follows.
	maxLiveReadsPerEvent = maxReferrerDepth
	// liveReadTime bounds the reads of one request in all: its answer must
	// be written within writeTimeout (30 s) of its arrival, and half of
	// that is left for recording the verdicts.
	liveReadTime = writeTimeout / 2
	// maxLiveNote bounds the note a failed read adds to a verdict's
	// detail (registry error messages are the registry's to choose).
	maxLiveNote = 300
)

// liveInventory is the inventory as one request's events are judged
// against it: a manifest the inventory does not hold (an OCI 1.1 referrer
// pushed by digest, untagged, through the referrers API by someone other
// than cip, or by cip a moment before it records it) is read from its
// repository, so that its subject field tells what it refers to. Reads
// happen only where the walk asks (Policy.account: repositories some
// manifest promotes into, so only the destination registries are ever
// contacted), at most maxLiveReadsPerEvent per event and within
// liveReadTime per request; each answer is checked against the digest
// asked for and capped in size by the reader. A read that fails leaves
// the manifest unknown (its event is judged without it, and the verdict
// says why): a registry that cannot be read must not hold the sender's
// queue of events.
type liveInventory struct {
	Inventory
	read     ManifestReader
	deadline time.Time
	seen     map[[2]string][]string // (repo, digest) -> subjects, for manifests read
	left     int                    // reads left for the event being judged
	failed   error                  // the first failed read of the event being judged
}

func newLiveInventory(inv Inventory, read ManifestReader, now time.Time) *liveInventory {
	return &liveInventory{Inventory: inv, read: read, deadline: now.Add(liveReadTime), seen: map[[2]string][]string{}}
}

// event starts the judging of one event: a budget of reads of its own.
func (l *liveInventory) event() {
	l.left, l.failed = maxLiveReadsPerEvent, nil
}

// note is what the verdict of the event just judged should add to its
// detail: why a manifest the inventory lacks could not be read.
func (l *liveInventory) note() string {
	if l.failed == nil {
		return ""
	}
	msg := l.failed.Error()
	if len(msg) > maxLiveNote {
		msg = msg[:maxLiveNote] + "…"
	}
	return " (a manifest the inventory does not hold could not be read to see what it refers to: " + msg + ")"
}

func (l *liveInventory) Subjects(ctx context.Context, repo, digest string) ([]string, bool, error) {
	subjects, known, err := l.Inventory.Subjects(ctx, repo, digest)
	if err != nil || known {
		return subjects, known, err
	}
	key := [2]string{repo, digest}
	if s, ok := l.seen[key]; ok {
		return s, true, nil
	}
	if l.left <= 0 {
		return nil, false, nil
	}
	if !time.Now().Before(l.deadline) {
		l.fail(fmt.Errorf("read %s@%s: no time left for this request's reads (%s)", repo, digest, liveReadTime))
		return nil, false, nil
	}
	l.left--
	rctx, cancel := context.WithDeadline(ctx, l.deadline)
	defer cancel()
	m, err := l.read(rctx, repo, digest)
	if errors.Is(err, registry.ErrNotFound) {
		// Gone already (or never there): nothing it refers to counts.
		return nil, false, nil
	}
	if err == nil && m.Digest != digest {
		err = fmt.Errorf("read %s@%s: the registry sent %s", repo, digest, m.Digest)
	}
	var pm *inventory.Manifest
	if err == nil {
		pm, err = inventory.ParseManifest(digest, m.MediaType, m.Raw)
	}
	if err != nil {
		l.fail(err)
		return nil, false, nil
	}
	if pm.Subject != "" {
		subjects = []string{pm.Subject}
	}
	l.seen[key] = subjects
	return subjects, true, nil
}

func (l *liveInventory) fail(err error) {
	if l.failed == nil {
		l.failed = err
	}
}
