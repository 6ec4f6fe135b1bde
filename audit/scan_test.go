package audit_test

import (
	"context"
	"errors"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/audit"
	"github.com/cipdev/cip/inventory"
)

func write(t *testing.T, db *inventory.DB, repo string, tags map[string]string, ms ...*inventory.Manifest) {
	t.Helper()
	if _, err := db.WriteRepository(context.Background(), 0, inventory.RepositoryState{Name: repo, Tags: tags, New: ms}); err != nil {
		t.Fatal(err)
	}
}

func TestScan(t *testing.T) {
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	db := openDB(t)
	dS, dR, dY := dg('5'), dg('6'), dg('7') // a signature of a; a rogue index over 1 and x; a rogue image posing as a signature
	rogue := &inventory.Manifest{Digest: dR, MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"rogue":1}`),
		Children: []inventory.Child{{Digest: d1}, {Digest: dX}}}
	const prod, mirror = "prod.example/prod/", "mirror.example:5000/m/"

	// prod: app holds the promoted digests and tags, a signature, a rogue
	// image and an extra tag; multi holds the promoted index and a rogue
	// one; nested and tagless were never promoted; rogue is a repository
	// no manifest names.
	write(t, db, prod+"app", map[string]string{"latest": dA, "v1": dA, "hotfix": dA, "v0.9": dB, "evil": dX, "sha256-" + dA[7:] + ".sig": dS,
		"sha256-" + dB[7:] + ".att": dY, "innocent": dY},
		image(dA), image(dB), image(dX), image(dS), image(dY))
	write(t, db, prod+"multi", map[string]string{"v2": dI, "v3x": dR}, rogue)
	write(t, db, "prod.example/prod/rogue", map[string]string{"v1": dX})
	// mirror: app's latest moved to b and v0.9 was removed (b stays, by
	// latest); multi's index was deleted (its tag removed).
	write(t, db, mirror+"app", map[string]string{"latest": dA, "v1": dA, "v0.9": dB})
	write(t, db, mirror+"app", map[string]string{"latest": dB, "v1": dA})
	write(t, db, mirror+"multi", map[string]string{"v2": dI})
	write(t, db, mirror+"multi", map[string]string{})
	// Outside the destinations: never audited.
	write(t, db, "src.example/staging/app", map[string]string{"v1": dX})

	fs, err := audit.Scan(context.Background(), db, p, nil, audit.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Reason                 audit.Reason
		Repository, Digest     string
		Tag, Tags, Want, Since string
	}
	var got []row
	for _, f := range fs {
		since := ""
		if f.Since != "" {
			since = "yes"
		}
		got = append(got, row{f.Reason, f.Repository, f.Digest, f.Tag, strings.Join(f.Tags, ","), f.Want, since})
		if f.Detail == "" {
			t.Errorf("finding %+v has no detail", f)
		}
	}
	want := []row{
		{audit.TagMismatch, mirror + "app", dB, "latest", "", dA, "yes"},
		{audit.Deletion, mirror + "app", dB, "v0.9", "", dB, "yes"},
		{audit.Deletion, mirror + "multi", dI, "", "", "", "yes"},
		{audit.Missing, mirror + "nested", dN, "", "", "", ""},
		{audit.Missing, mirror + "tagless", dT, "", "", "", ""},
		{audit.TagMismatch, prod + "app", dY, "innocent", "", "", "yes"},
		{audit.NotInManifest, prod + "app", dX, "", "evil", "", ""},
		{audit.TagMismatch, prod + "app", dA, "hotfix", "", "", "yes"},
		{audit.NotInManifest, prod + "multi", dR, "", "v3x", "", ""},
		{audit.Missing, prod + "nested", dN, "", "", "", ""},
		{audit.UnknownRepository, "prod.example/prod/rogue", dX, "", "v1", "", ""},
		{audit.Missing, prod + "tagless", dT, "", "", "", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Scan (-want +got):\n%s", diff)
	}

	// A scope limits the audit; a scope below another adds nothing.
	fs, err = audit.Scan(context.Background(), db, p, []string{"prod.example/prod/multi", "prod.example/prod/multi/x", "prod.example/prod/mult"}, audit.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Digest != dR {
		t.Errorf("Scan(prod/multi) = %+v, want the rogue index only", fs)
	}
}

// A clean production has no finding.
func TestScanClean(t *testing.T) {
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	db := openDB(t)
	for _, dst := range []string{"prod.example/prod/", "mirror.example:5000/m/"} {
		write(t, db, dst+"app", map[string]string{"latest": dA, "v1": dA, "v0.9": dB}, image(dA), image(dB))
		write(t, db, dst+"multi", map[string]string{"v2": dI})
		write(t, db, dst+"nested", map[string]string{"v3": dN})
		// A tagless digest is held when a HEAD found it (promotion records
		// it so).
		if err := db.InsertManifests(context.Background(), []*inventory.Manifest{image(dT)}); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordDigest(context.Background(), dst+"tagless", dT); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := audit.Scan(context.Background(), db, p, nil, audit.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Errorf("Scan of a clean production = %+v, want none", fs)
	}
}

// A promoted digest the inventory does not hold may be there untagged:
// Scan asks Present, and reports only its missing tags when it is.
func TestScanAsksPresence(t *testing.T) {
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	db := openDB(t)
	const prod = "prod.example/prod/"
	write(t, db, prod+"app", map[string]string{"latest": dA, "v1": dA, "v0.9": dB}, image(dA), image(dB))
	write(t, db, prod+"nested", map[string]string{"v3": dN})
	write(t, db, prod+"multi", map[string]string{"v2": dI})
	write(t, db, prod+"multi", map[string]string{}) // v2 removed: the index is untagged now, or gone
	var asked []string
	var mu sync.Mutex
	present := func(_ context.Context, repo, digest string) (bool, error) {
		mu.Lock()
		asked = append(asked, repo+"@"+digest[7:8])
		mu.Unlock()
		return repo == prod+"tagless" || repo == prod+"multi", nil
	}
	fs, err := audit.Scan(context.Background(), db, p, []string{"prod.example/prod"}, audit.ScanOptions{Present: present, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, string(f.Reason)+" "+f.Repository+"@"+f.Digest[7:8]+":"+f.Tag)
	}
	want := []string{"deletion " + prod + "multi@e:v2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Scan with presence (-want +got):\n%s", diff)
	}
	sort.Strings(asked)
	if diff := cmp.Diff([]string{prod + "multi@e", prod + "tagless@c"}, asked); diff != "" {
		t.Errorf("Present asked about (-want +got):\n%s", diff)
	}
	broken := func(context.Context, string, string) (bool, error) { return false, errBroken }
	if _, err := audit.Scan(context.Background(), db, p, nil, audit.ScanOptions{Present: broken}); !errors.Is(err, errBroken) {
		t.Errorf("Scan with a failing Present: %v, want %v", err, errBroken)
	}
}
