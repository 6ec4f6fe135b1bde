package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// fileCheck collects the problems of one file. A fatal problem (bad YAML,
// unknown field, bad registries, ...) makes the whole file unusable; other
// problems only invalidate the entry they are in.
type fileCheck struct {
	file  string
	errs  []*Error
	notes []*Error // Set.Notices: worth saying, never a reason to refuse
	fatal bool
}

// note records something worth saying that does not make the file or any
// entry invalid (a deprecated field, a setting cip ignores).
func (c *fileCheck) note(line int, format string, args ...any) {
	c.notes = append(c.notes, &Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// fail records a problem that makes the whole file unusable.
func (c *fileCheck) fail(line int, format string, args ...any) {
	c.fatal = true
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// bad records a problem confined to one entry.
func (c *fileCheck) bad(line int, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// readFile reads c.file, enforcing the size limit and UTF-8. It returns an
// error only for I/O failures (open, stat, read, not a regular file); content
// problems are recorded in c and reported by a nil result.
func readFile(c *fileCheck, max int64) ([]byte, error) {
	f, err := os.Open(c.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: c.file, Err: errors.New("not a regular file")}
	}
	if fi.Size() > max {
		c.fail(0, "file is %d bytes, over the limit of %d bytes", fi.Size(), max)
		return nil, nil
	}
	// The limit also applies to what is read, in case the file grows.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		c.fail(0, "file is over the limit of %d bytes", max)
		return nil, nil
	}
	return data, nil
}

// docKind says what a file held.
type docKind int

const (
	docInvalid  docKind = iota // a problem was recorded
	docBlank                   // nothing but white space (an empty or truncated file)
	docComments                // only comments: a YAML stream with no document
	docContent                 // one document; the node is its content
)

// parseYAML parses data as exactly one YAML document with no anchors or
// aliases and returns its content node.
func parseYAML(c *fileCheck, data []byte) (root *yaml.Node, kind docKind) {
	if i := invalidUTF8(data); i >= 0 {
		line := 1 + bytes.Count(data[:i], []byte("\n"))
		col := i - bytes.LastIndexByte(data[:i], '\n')
		c.fail(line, "invalid UTF-8 (byte 0x%02x at column %d); want UTF-8 text", data[i], col)
		return nil, docInvalid
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, docBlank
	}
	// yaml.v3 is not known to panic on any input, but a manifest loader
	// must never take its caller down on a hostile file.
	defer func() {
		if r := recover(); r != nil {
			c.fail(0, "invalid YAML: parser panic: %v", r)
			root, kind = nil, docInvalid
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, docComments
		}
		c.fail(yamlError(err))
		return nil, docInvalid
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		c.fail(yamlError(err))
		return nil, docInvalid
	default:
		c.fail(extra.Line, "second YAML document (after ---); want one document")
		return nil, docInvalid
	}
	// Aliases are refused outright rather than capped: no real manifest uses
	// them, and refusing them makes alias bombs fail in linear time.
	if n := findAnchor(&doc); n != nil {
		if n.Kind == yaml.AliasNode {
			c.fail(n.Line, "YAML alias *%s: aliases are not supported; write the value out", n.Value)
		} else {
			c.fail(n.Line, "YAML anchor &%s: anchors are not supported; write the value out", n.Anchor)
		}
		return nil, docInvalid
	}
	if len(doc.Content) == 0 {
		return nil, docComments
	}
	return doc.Content[0], docContent
}

// invalidUTF8 returns the offset of the first byte that is not valid UTF-8
// or is NUL, or -1.
func invalidUTF8(data []byte) int {
	if utf8.Valid(data) && bytes.IndexByte(data, 0) < 0 {
		return -1
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 || r == 0 {
			return i
		}
		i += size
	}
	return -1
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error ("yaml: line 3: ...") into a line and a
// message.
func yamlError(err error) (int, string, any) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, "invalid YAML: %s", m[2]
	}
	return 0, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: ")
}

func findAnchor(root *yaml.Node) *yaml.Node {
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			return n
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, n.Content[i])
		}
	}
	return nil
}

// unknownHints explain common misplaced fields, by "what.key".
var unknownHints = map[string]string{
	"promoter manifest.images":       " (images belong in images/<name>/images.yaml)",
	"manifest.imagesPath":            " (imagesPath is for thin manifests only)",
	"registry entry.service_account": " (spelled service-account)",
}

// field is one key: value pair of a mapping.
type field struct {
	key, val *yaml.Node
}

// fields returns the pairs of mapping n by key. Non-string keys, duplicate
// keys and keys not in allowed are fatal. what names the mapping in
// messages.
func (c *fileCheck) fields(n *yaml.Node, what string, allowed ...string) (map[string]field, bool) {
	out := make(map[string]field, len(n.Content)/2)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			c.fail(k.Line, "%s: key is a %s; want a field name", what, kindName(k))
			ok = false
			continue
		}
		if prev, dup := out[k.Value]; dup {
			c.fail(k.Line, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.key.Line)
			ok = false
			continue
		}
		if !contains(allowed, k.Value) {
			c.fail(k.Line, "%s: unknown field %q; want %s%s", what, k.Value, orList(allowed), unknownHints[what+"."+k.Value])
			ok = false
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out, ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orList(words []string) string {
	switch len(words) {
	case 1:
		return words[0]
	case 2:
		return words[0] + " or " + words[1]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// scalar returns the text of a non-null scalar as written, so that an
// unquoted tag such as 1.10 keeps its trailing zero.
func scalar(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

// kindName describes a node for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		if n.Tag == "!!str" {
			return fmt.Sprintf("string %q", truncate(n.Value, 40))
		}
		return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), truncate(n.Value, 40))
	}
	return "non-scalar"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
