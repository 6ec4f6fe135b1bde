package sync

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Each host's repositories in name order, host k of n starting k/n of the
// way into its list.
func TestStaggered(t *testing.T) {
	var repos []string
	for _, h := range []string{"a.io", "b.io", "c.io"} {
		for i := range 6 {
			repos = append(repos, fmt.Sprintf("%s/r%d", h, i))
		}
	}
	repos = append(repos, "d.io/only")
	got := staggered(repos)
	want := []string{
		"a.io/r0", "a.io/r1", "a.io/r2", "a.io/r3", "a.io/r4", "a.io/r5",
		"b.io/r1", "b.io/r2", "b.io/r3", "b.io/r4", "b.io/r5", "b.io/r0",
		"c.io/r3", "c.io/r4", "c.io/r5", "c.io/r0", "c.io/r1", "c.io/r2",
		"d.io/only",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("staggered (-want +got):\n%s", diff)
	}
}
