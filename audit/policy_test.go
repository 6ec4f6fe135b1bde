package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cipdev/cip/audit"
)

func push(repo, digest, tag string) audit.Event {
	host, _, _ := strings.Cut(repo, "/")
	return audit.Event{Source: audit.SourceDistribution, ID: "id", Action: audit.ActionPush, Registry: host, Repository: repo, Digest: digest, Tag: tag}
}

func TestJudge(t *testing.T) {
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	db := openDB(t)
	const prod, mirror = "prod.example/prod/", "mirror.example:5000/m/"
	del := push(prod+"app", dA, "")
	del.Action = audit.ActionDelete
	delUnknown := push("prod.example/prod/other", dX, "v1")
	delUnknown.Action = audit.ActionDelete
	invalid := push(prod+"app", dA, "")
	invalid.Invalid = "unknown action \"patch\""
	for _, tc := range []struct {
		name    string
		ev      audit.Event
		verdict string
		reason  audit.Reason
		parent  string
		detail  string // a part of the detail
	}{
		{"promoted digest and tag", push(prod+"app", dA, "v1"), audit.Verified, audit.Promoted, "", "agrees with"},
		{"second tag, second destination", push(mirror+"app", dA, "latest"), audit.Verified, audit.Promoted, "", "promoter-manifest.yaml:"},
		{"promoted digest, untagged", push(prod+"app", dA, ""), audit.Verified, audit.Promoted, "", ""},
		{"tagless promotion", push(prod+"tagless", dT, ""), audit.Verified, audit.Promoted, "", ""},
		{"promoted tag moved to another promoted digest", push(prod+"app", dB, "latest"), audit.Rejected, audit.TagMismatch, "", "wants it at " + dA},
		{"promoted tag moved to a rogue digest", push(prod+"app", dX, "v1"), audit.Rejected, audit.TagMismatch, "", "moved to " + dX},
		{"promoted digest, tag in no manifest", push(prod+"app", dA, "hotfix"), audit.Rejected, audit.TagMismatch, "", "the tags latest, v1"},
		{"tag on a tagless promotion", push(prod+"tagless", dT, "x"), audit.Rejected, audit.TagMismatch, "", "no tag"},
		{"rogue digest, new tag", push(prod+"app", dX, "evil"), audit.Rejected, audit.NotInManifest, "", "no manifest promotes " + dX},
		{"rogue digest, untagged", push(prod+"app", dX, ""), audit.Rejected, audit.NotInManifest, "", ""},
		{"child of a promoted index", push(prod+"multi", d1, ""), audit.Verified, audit.Child, dI, "child of " + dI},
		{"child, second destination", push(mirror+"multi", d2, ""), audit.Verified, audit.Child, dI, ""},
		{"grandchild of a promoted index of indexes", push(prod+"nested", d3, ""), audit.Verified, audit.Child, dN, ""},
		{"inner index of a promoted index of indexes", push(prod+"nested", dM, ""), audit.Verified, audit.Child, dN, ""},
		{"tagged child", push(prod+"multi", d1, "amd64"), audit.Rejected, audit.TagMismatch, dI, "no manifest gives it that tag"},
		{"child of an index promoted elsewhere", push(prod+"app", d1, ""), audit.Rejected, audit.NotInManifest, "", ""},
		{"cosign signature of a promoted digest", push(prod+"app", dX, "sha256-"+dA[7:]+".sig"), audit.Verified, audit.Referrer, dA, "refers to " + dA},
		{"cosign attestation of a promoted child", push(prod+"multi", dX, "sha256-"+d1[7:]+".att"), audit.Verified, audit.Referrer, d1, ""},
		{"OCI referrers tag of a promoted digest", push(prod+"app", dX, "sha256-"+dB[7:]), audit.Verified, audit.Referrer, dB, ""},
		{"SBOM of a digest promoted elsewhere", push(prod+"app", dX, "sha256-"+dI[7:]+".sbom"), audit.Rejected, audit.NotInManifest, "", ""},
		{"signature tag with a short hex", push(prod+"app", dX, "sha256-abc.sig"), audit.Rejected, audit.NotInManifest, "", ""},
		{"repository no manifest promotes into", push("prod.example/prod/other", dA, "v1"), audit.Rejected, audit.UnknownRepository, "", "no manifest promotes into prod.example/prod/other"},
		{"the source is no destination", push("src.example/staging/app", dA, "v1"), audit.Rejected, audit.UnknownRepository, "", ""},
		{"deletion of a promoted digest", del, audit.Rejected, audit.Deletion, "", "deletions from production are prohibited"},
		{"deletion anywhere", delUnknown, audit.Rejected, audit.Deletion, "", ""},
		{"invalid event", invalid, audit.Rejected, audit.InvalidEvent, "", "patch"},
		{"push without digest", push(prod+"app", "", "v1"), audit.Rejected, audit.InvalidEvent, "", "names no digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Judge(context.Background(), db, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if v.Verdict != tc.verdict || v.Reason != tc.reason || v.Parent != tc.parent {
				t.Errorf("Judge(%s@%s:%s) = %s %s (parent %q), want %s %s (parent %q); detail: %s",
					tc.ev.Repository, tc.ev.Digest, tc.ev.Tag, v.Verdict, v.Reason, v.Parent, tc.verdict, tc.reason, tc.parent, v.Detail)
			}
			if !strings.Contains(v.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", v.Detail, tc.detail)
			}
		})
	}
}

// Without the inventory's index children a child cannot be verified: the
// server must know the promoted indexes (a refresh syncs the sources).
func TestJudgeChildUnknownToInventory(t *testing.T) {
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	v, err := p.Judge(context.Background(), noParents{}, push("prod.example/prod/multi", d1, ""))
	if err != nil || v.Verdict != audit.Rejected || v.Reason != audit.NotInManifest {
		t.Errorf("Judge(child, empty inventory) = %s %s, %v; want REJECTED not-in-manifest", v.Verdict, v.Reason, err)
	}
}

type noParents struct{}

func (noParents) Parents(context.Context, string) ([]string, error) { return nil, nil }
func (noParents) Subjects(context.Context, string, string) ([]string, bool, error) {
	return nil, false, nil
}

type failingParents struct{}

var errBroken = errors.New("inventory broken")

func (failingParents) Parents(context.Context, string) ([]string, error) { return nil, errBroken }
func (failingParents) Subjects(context.Context, string, string) ([]string, bool, error) {
	return nil, false, errBroken
}

// An inventory error is no verdict: the caller answers 500 and the sender
// retries.
func TestJudgeInventoryError(t *testing.T) {
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	if _, err := p.Judge(context.Background(), failingParents{}, push("prod.example/prod/app", dX, "")); !errors.Is(err, errBroken) {
		t.Errorf("Judge with a failing inventory: err = %v, want %v", err, errBroken)
	}
	// Verdicts that need no inventory still come.
	if v, err := p.Judge(context.Background(), failingParents{}, push("prod.example/prod/app", dA, "v1")); err != nil || v.Verdict != audit.Verified {
		t.Errorf("Judge(promoted) with a failing inventory = %s, %v; want VERIFIED", v.Verdict, err)
	}
}

// cyclicParents is a hostile inventory where every digest is its own
// grandparent and refers to new digests: the walk up must stop.
type cyclicParents struct{ calls *int }

func (c cyclicParents) Parents(_ context.Context, d string) ([]string, error) {
	*c.calls++
	return []string{d[:len(d)-1] + "x", d[:len(d)-1] + "y"}, nil
}

func (c cyclicParents) Subjects(_ context.Context, _, d string) ([]string, bool, error) {
	*c.calls++
	return []string{d[:len(d)-2] + "sx", d[:len(d)-2] + "sy", d[1:] + "z"}, true, nil
}

func TestJudgeBoundedWalk(t *testing.T) {
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	calls := 0
	v, err := p.Judge(context.Background(), cyclicParents{&calls}, push("prod.example/prod/app", dX, ""))
	if err != nil || v.Reason != audit.NotInManifest {
		t.Errorf("Judge = %s, %v; want not-in-manifest", v.Reason, err)
	}
	if calls > 2000 {
		t.Errorf("%d inventory lookups for one event, want a bounded walk", calls)
	}
}
