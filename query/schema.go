package query

import (
	"bufio"
	"context"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"github.com/cipdev/cip/migrations"
)

// promotionsDoc documents the temporary promotions table.
var promotionsDoc = map[string]string{
	"":           "what the loaded manifests promote (with --manifest / --thin-manifest-dir; temporary)",
	"src":        "source registry of the manifest",
	"dst":        "destination registry",
	"image":      "image name, relative to the registries",
	"repository": "dst || '/' || image",
	"digest":     "sha256:<hex> to promote",
	"tag":        "a tag to put on it; '' for the row that stands for the digest itself",
	"file":       "images file the entry came from",
	"line":       "line of the digest in file",
}

var (
	createRE = regexp.MustCompile(`(?i)^\s*CREATE\s+(?:TEMP\s+)?(TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)`)
	columnRE = regexp.MustCompile(`^\s+(\w+)\s+[A-Za-z]+[^-]*--\s*(.*)$`)
	// alterRE is a column a later migration adds, with its trailing comment.
	alterRE = regexp.MustCompile(`(?i)^\s*ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)\s+[A-Za-z]+[^-]*--\s*(.*)$`)
)

// schemaDocs reads one-line meanings of tables and columns from the
// migrations' SQL comments: the comment block above CREATE TABLE/VIEW, and
// the trailing comment of each column line.
func schemaDocs() (tables map[string]string, columns map[string]map[string]string) {
	tables, columns = map[string]string{}, map[string]map[string]string{}
	names, _ := fs.Glob(migrations.FS, "*.sql")
	sort.Strings(names)
	for _, n := range names {
		body, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			continue
		}
		var block []string
		cur := ""
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		for sc.Scan() {
			line := sc.Text()
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(trimmed, "--"):
				block = append(block, strings.TrimSpace(strings.TrimPrefix(trimmed, "--")))
				continue
			case trimmed == "":
				block = nil
				continue
			}
			if m := alterRE.FindStringSubmatch(line); m != nil {
				if columns[m[1]] == nil {
					columns[m[1]] = map[string]string{}
				}
				columns[m[1]][m[2]] = m[3]
				block = nil
				continue
			}
			if m := createRE.FindStringSubmatch(line); m != nil {
				cur = m[2]
				if len(block) > 0 {
					tables[cur] = firstSentence(strings.Join(block, " "))
				}
				columns[cur] = map[string]string{}
				block = nil
				continue
			}
			block = nil
			if cur == "" {
				continue
			}
			if strings.HasPrefix(trimmed, ")") {
				cur = ""
				continue
			}
			if m := columnRE.FindStringSubmatch(line); m != nil {
				columns[cur][m[1]] = m[2]
			}
		}
	}
	return tables, columns
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

// Schema lists every table and view of the inventory (and the temporary
// promotions table) with its columns, their types and meanings.
func Schema(ctx context.Context, path string) (*Result, error) {
	s, notes, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	tdocs, cdocs := schemaDocs()
	tdocs["promotions"] = promotionsDoc[""]
	cdocs["promotions"] = promotionsDoc
	tables, err := s.r.Tables(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: []string{"table", "column", "type", "meaning"}, Notes: notes, Prose: []string{"meaning"}}
	for _, t := range tables {
		res.Rows = append(res.Rows, []any{t.Name, "", t.Kind, tdocs[t.Name]})
		for _, c := range t.Columns {
			doc := cdocs[t.Name][c.Name]
			if doc == "" && c.Name == "id" {
				doc = "row id"
			}
			res.Rows = append(res.Rows, []any{t.Name, c.Name, c.Type, doc})
		}
	}
	return res, nil
}

// List returns every question form with its wording and an example.
func List() *Result {
	res := &Result{Columns: []string{"form", "question", "example"}, Prose: []string{"question", "example"}}
	for _, f := range forms {
		res.Rows = append(res.Rows, []any{f.Name, f.pats[0].display(), f.Example})
	}
	return res
}
