package manifest

import (
	"gopkg.in/yaml.v3"

	"github.com/cipdev/cip/internal/googlehost"
)

// image and digest are the loader's working form of Image and Digest: maps
// for merging repeated entries, and the line of every tag so that a tag
// conflict points at the tag itself.
type image struct {
	name    string
	line    int
	digests map[string]*digest
}

type digest struct {
	digest   string
	line     int
	tags     map[string]int // tag -> line
	excluded bool           // dropped because of a tag conflict (SkipInvalid)
}

// decodeRegistries decodes and checks a registries list. keyLine is the line
// of the registries key (0 when absent). Every problem is fatal: a manifest
// whose registries are wrong must not promote anywhere.
func (c *fileCheck) decodeRegistries(n *yaml.Node, keyLine int) []Registry {
	if n == nil || isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		c.fail(keyLine, "no registries: want a source registry (src: true) and destinations")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		c.fail(n.Line, "registries: want a list, got %s", kindName(n))
		return nil
	}
	var regs []Registry
	first := map[string]int{} // name -> index in regs
	src := -1
	errs := len(c.errs)
	for _, e := range n.Content {
		if e.Kind != yaml.MappingNode {
			c.fail(e.Line, "registry entry: want a mapping with name, src and service-account, got %s", kindName(e))
			continue
		}
		fs, ok := c.fields(e, "registry entry", "name", "src", "service-account")
		if !ok {
			continue
		}
		nf, has := fs["name"]
		if !has {
			c.fail(e.Line, "registry entry: missing name")
			continue
		}
		name, ok := scalar(nf.val)
		if !ok {
			c.fail(nf.val.Line, "registry entry: name: want a string, got %s", kindName(nf.val))
			continue
		}
		if err := ValidateRegistryName(name); err != nil {
			c.fail(nf.val.Line, "registry %q: %v", RedactCredentials(name), err)
			continue
		}
		r := Registry{Name: name, Line: e.Line}
		if f, has := fs["src"]; has {
			if f.val.Kind != yaml.ScalarNode || f.val.Tag != "!!bool" || f.val.Decode(&r.Src) != nil {
				c.fail(f.val.Line, "registry %q: src: want true or false, got %s", name, kindName(f.val))
				continue
			}
		}
		if f, has := fs["service-account"]; has && !isNull(f.val) {
			sa, ok := scalar(f.val)
			if !ok {
				c.fail(f.val.Line, "registry %q: service-account: want a string, got %s", name, kindName(f.val))
				continue
			}
			r.ServiceAccount = sa
			if !googlehost.OfName(name) {
				// cip borrows an account through gcloud, whose tokens are
				// good only at Google: elsewhere it would fail every run.
				c.note(f.val.Line, "registry %q: service-account %s is ignored: service accounts are used only for Google registries (gcr.io, *.pkg.dev)", name, sa)
			}
		}
		if i, dup := first[name]; dup {
			// An exact repeat (real data has one) changes nothing: only
			// the repeat is dropped. A repeat that disagrees is ambiguous.
			if prev := regs[i]; prev.Src == r.Src && prev.ServiceAccount == r.ServiceAccount {
				c.bad(e.Line, "registry %q: listed twice (first at line %d)", name, prev.Line)
			} else {
				c.fail(e.Line, "registry %q: listed twice with a different src or service-account (first at line %d)", name, prev.Line)
			}
			continue
		}
		first[name] = len(regs)
		if r.Src {
			if src >= 0 {
				s := regs[src]
				c.fail(e.Line, "registry %q: second source registry (%q at line %d is src: true too); want exactly one", name, s.Name, s.Line)
				continue
			}
			src = len(regs)
		}
		regs = append(regs, r)
	}
	// When an entry was rejected, it may have been the source.
	if src < 0 && len(c.errs) == errs {
		c.fail(n.Line, "no source registry: want exactly one registry with src: true")
	}
	return regs
}

// decodeImages decodes an images list into imgs, merging entries that name
// the same image. Problems inside one image entry drop that entry (or the
// digest entry) only.
func (c *fileCheck) decodeImages(n *yaml.Node, imgs map[string]*image) {
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		c.fail(n.Line, "images: want a list of images, got %s", kindName(n))
		return
	}
	for _, e := range n.Content {
		c.decodeImage(e, imgs)
	}
}

func (c *fileCheck) decodeImage(e *yaml.Node, imgs map[string]*image) {
	if e.Kind != yaml.MappingNode {
		c.bad(e.Line, "image entry: want a mapping with name and dmap, got %s", kindName(e))
		return
	}
	fs, ok := c.fields(e, "image entry", "name", "dmap")
	if !ok {
		return
	}
	nf, has := fs["name"]
	if !has {
		c.bad(e.Line, "image entry: missing name")
		return
	}
	name, ok := scalar(nf.val)
	if !ok {
		c.bad(nf.val.Line, "image entry: name: want a string, got %s", kindName(nf.val))
		return
	}
	valid := true
	if err := ValidateImageName(name); err != nil {
		c.bad(nf.val.Line, "image %q: %v", name, err)
		valid = false
	}
	// A missing, null or empty dmap promotes nothing.
	var digests map[string]*digest
	if df, has := fs["dmap"]; has && !isNull(df.val) {
		digests = c.decodeDmap(name, df.val)
	}
	if !valid {
		return
	}
	img := imgs[name]
	if img == nil {
		img = &image{name: name, line: e.Line, digests: map[string]*digest{}}
		imgs[name] = img
	}
	for d, nd := range digests {
		old := img.digests[d]
		if old == nil {
			img.digests[d] = nd
			continue
		}
		// The same digest listed again (in a repeated image entry) adds
		// its tags; a tag keeps its first line.
		for t, line := range nd.tags {
			if _, seen := old.tags[t]; !seen {
				old.tags[t] = line
			}
		}
	}
}

// decodeDmap decodes one dmap (digest -> tags). Invalid digest entries are
// reported and left out.
func (c *fileCheck) decodeDmap(name string, n *yaml.Node) map[string]*digest {
	if n.Kind != yaml.MappingNode {
		c.bad(n.Line, "image %q: dmap: want a mapping of digests to tag lists, got %s", name, kindName(n))
		return nil
	}
	out := make(map[string]*digest, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		d, ok := scalar(k)
		if !ok {
			c.bad(k.Line, "image %q: dmap key: want a digest string, got %s", name, kindName(k))
			continue
		}
		if line, dup := lines[d]; dup {
			c.fail(k.Line, "image %q: dmap: duplicate key %q (first at line %d)", name, d, line)
			continue
		}
		lines[d] = k.Line
		good := true
		if err := ValidateDigest(d); err != nil {
			c.bad(k.Line, "image %q: digest %q: %v", name, d, err)
			good = false
		}
		tags := c.decodeTags(name, d, v)
		if tags == nil || !good {
			continue
		}
		out[d] = &digest{digest: d, line: k.Line, tags: tags}
	}
	return out
}

// decodeTags decodes the tag list of one digest; nil means the list was
// invalid (already reported). A null list is a tagless promotion, like [].
func (c *fileCheck) decodeTags(name, d string, n *yaml.Node) map[string]int {
	tags := map[string]int{}
	if isNull(n) {
		return tags
	}
	if n.Kind != yaml.SequenceNode {
		c.bad(n.Line, "image %q: digest %q: want a list of tags, got %s", name, d, kindName(n))
		return nil
	}
	good := true
	for _, tn := range n.Content {
		t, ok := scalar(tn)
		if !ok {
			c.bad(tn.Line, "image %q: digest %q: tag: want a string, got %s", name, d, kindName(tn))
			good = false
			continue
		}
		if err := ValidateTag(t); err != nil {
			c.bad(tn.Line, "image %q: digest %q: tag %q: %v", name, d, t, err)
			good = false
			continue
		}
		if _, seen := tags[t]; !seen {
			tags[t] = tn.Line
		}
	}
	if !good {
		return nil
	}
	return tags
}
