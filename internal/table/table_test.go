package table

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/olekukonko/tablewriter/pkg/twwidth"
)

const digest = "sha256:3f1c0e6e1b8a4a7d9f2c5b6e8d0a1c3e5f7b9d1a3c5e7f9b1d3f5a7c9e1b3d5f"

func write(t *testing.T, cols []Column, rows [][]string, width int) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, cols, rows, width); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFull(t *testing.T) {
	got := write(t, Columns("ACTION", "IMAGE", "DIGEST"), [][]string{{"copy", "app", digest}, {"skip", "a-longer-image"}}, 0)
	want := "ACTION  IMAGE           DIGEST\n" +
		"copy    app             " + digest + "\n" +
		"skip    a-longer-image\n"
	if got != want {
		t.Errorf("Write(width 0) =\n%s\nwant\n%s", got, want)
	}
	// A table that fits is the same at any larger width.
	if w := write(t, Columns("ACTION", "IMAGE", "DIGEST"), [][]string{{"copy", "app", digest}, {"skip", "a-longer-image"}}, 200); w != want {
		t.Errorf("Write(width 200) =\n%s\nwant the full table", w)
	}
}

// Under a width, no line is wider; cut cells keep their start (or end) and
// an ellipsis; prose wraps and loses no word.
func TestFitted(t *testing.T) {
	msg := "image \"app\": digest " + digest + " is not in the source repository gcr.io/k8s-staging-foo/app, so it can never be promoted"
	file := "registry.k8s.io/images/k8s-staging-foo/images.yaml:12"
	cols := []Column{{Name: "SEVERITY"}, {Name: "CHECK"}, {Name: "FILE", Fit: CutStart}, {Name: "MESSAGE", Fit: Wrap}}
	rows := [][]string{{"error", "source-presence", file, msg}, {"warning", "format", "x.yaml", "not canonical"}}
	for _, width := range []int{120, 100, 80, 60, 40} {
		out := write(t, cols, rows, width)
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if w := twwidth.Width(line); w > width {
				t.Errorf("width %d: line %q is %d wide", width, line, w)
			}
		}
		// Every word of the message is there, in order (a long one maybe
		// broken over lines).
		var words []string
		for _, line := range strings.Split(out, "\n") {
			if i := strings.Index(line, "  "); i >= 0 {
				words = append(words, strings.Fields(line)...)
			}
		}
		joined := strings.Join(words, "")
		if !strings.Contains(joined, strings.ReplaceAll(msg, " ", "")) {
			t.Errorf("width %d: the message lost words:\n%s", width, out)
		}
		if width <= 100 && !strings.Contains(out, "…") {
			t.Errorf("width %d: nothing cut:\n%s", width, out)
		}
		if strings.Contains(out, file[:10]) && width < 80 {
			t.Errorf("width %d: FILE kept its start, want its end:\n%s", width, out)
		}
	}
	// While the other columns fit in full, only the prose wraps.
	out := write(t, cols, rows, 110)
	if !strings.Contains(out, file) || !strings.Contains(out, "source-presence") {
		t.Errorf("width 110: a column other than MESSAGE was cut:\n%s", out)
	}
}

func TestCutAndWrap(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		fit   Fit
		want  string
	}{
		{"abcdef", 4, Cut, "abc…"},
		{"abcdef", 4, CutStart, "…def"},
		{"abcdef", 6, Cut, "abcdef"},
		{"one two three", 7, Wrap, "one two\nthree"},
		{"abcdefghij k", 4, Wrap, "abcd\nefgh\nij k"},
		{"a\nbcdef", 3, Cut, "a\nbc…"},
	} {
		if got := fitCell(tc.in, tc.width, tc.fit); got != tc.want {
			t.Errorf("fitCell(%q, %d, %d) = %q, want %q", tc.in, tc.width, tc.fit, got, tc.want)
		}
	}
}

func TestFitWidths(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cols  []Column
		nat   []int
		width int
		want  []int
	}{
		{"fits", Columns("a", "b"), []int{10, 20}, 40, []int{10, 20}},
		{"the widest gives way", Columns("a", "b", "c"), []int{5, 30, 80}, 60, []int{5, 26, 25}},
		{"prose first", []Column{{Name: "a"}, {Name: "b", Fit: Wrap}}, []int{40, 80}, 70, []int{40, 28}},
		{"prose at its minimum, then all", []Column{{Name: "a"}, {Name: "b", Fit: Wrap}}, []int{60, 80}, 70, []int{34, 34}},
	} {
		got := fitWidths(tc.cols, tc.nat, tc.width)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: fitWidths = %v, want %v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: fitWidths = %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}

// A streamed table is the table Write prints, fitted or not.
func TestStreamMatchesWrite(t *testing.T) {
	cols := []Column{{Name: "ACTION"}, {Name: "DESTINATION"}, {Name: "IMAGE", Fit: CutStart}, {Name: "DIGEST"}, {Name: "TAGS"}}
	rows := [][]string{
		{"copy", "us-docker.pkg.dev/k8s-artifacts-prod/images", "kubernetes/kube-apiserver", "sha256:" + strings.Repeat("a", 64), "v1.30.0,v1.30.0-rc.1"},
		{"tag", "gcr.io/p", "pause", "sha256:" + strings.Repeat("b", 64), "+3.9"},
		{"lost", "d", "", "sha256:" + strings.Repeat("c", 64), "-"},
	}
	for _, width := range []int{0, 200, 100, 60, 20} {
		var want, got bytes.Buffer
		if err := Write(&want, cols, rows, width); err != nil {
			t.Fatal(err)
		}
		wd := NewWidths(cols)
		for _, r := range rows {
			wd.Add(r)
		}
		s, err := NewStream(&got, cols, wd, width)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := s.Row(r); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("width %d: Stream differs from Write (-Write +Stream):\n%s", width, diff)
		}
	}
}
