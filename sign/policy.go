package sign

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
	"gopkg.in/yaml.v3"
)

// Mode is what a rule does with an unsigned digest.
type Mode string

// Modes.
const (
	// Require refuses a digest without a signature the rule trusts.
	Require Mode = "require"
	// IfPresent lets an unsigned digest pass (kpromo's behaviour) and
	// refuses one whose signatures all fail.
	IfPresent Mode = "if-present"
)

// Policy is a --signature-policy file: rules, the first matching one
// judging each promoted digest. Digests no rule matches are not checked.
type Policy struct {
	File  string
	Rules []*Rule
}

// Rule requires the digests of matching images to be signed by its keys
// or identities.
type Rule struct {
	Name string
	Line int
	// Source is a glob (path.Match: * stays within one path segment)
	// over the source registry (as the manifests name it, e.g.
	// gcr.io/k8s-staging-foo); Images globs over image names (any one
	// matching; none given means every image).
	Source string
	Images []string
	Mode   Mode
	Trust  Trust
}

// String names the rule as the plan shows it.
func (r *Rule) String() string { return r.Name }

// Match returns the first rule for an image of a source registry, or nil.
func (p *Policy) Match(src, image string) *Rule {
	if p == nil {
		return nil
	}
	for _, r := range p.Rules {
		if ok, _ := path.Match(r.Source, src); !ok {
			continue
		}
		if len(r.Images) == 0 {
			return r
		}
		for _, g := range r.Images {
			if ok, _ := path.Match(g, image); ok {
				return r
			}
		}
	}
	return nil
}

// Check judges one digest by its signatures: the first that verifies
// passes it; with none, Require refuses (NoSignature) and IfPresent
// passes; with only failing ones, it is refused with the reason of the
// first (by format, then referrer). The error is an *Error.
func (r *Rule) Check(digest string, sigs []Signature) (Verified, bool, error) {
	if len(sigs) == 0 {
		if r.Mode == IfPresent {
			return Verified{}, false, nil
		}
		return Verified{}, false, &Error{Reason: NoSignature}
	}
	var first *Error
	for _, s := range sigs {
		v, err := r.Trust.Verify(s, digest)
		if err == nil {
			return v, true, nil
		}
		if first == nil {
			e := &Error{Reason: BadSignature, Detail: err.Error()}
			errors.As(err, &e)
			first = &Error{Reason: e.Reason, Detail: fmt.Sprintf("%s in %s: %s", s.Format, s.Referrer, e.Detail)}
		}
	}
	return Verified{}, false, first
}

// LineError is a mistake in a policy file, at a line.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// PolicyError lists a policy file's mistakes, by line.
type PolicyError struct {
	Errs []*LineError
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid signature policy (%d problem(s)):", len(e.Errs))
	for _, x := range e.Errs {
		b.WriteString("\n  " + x.Error())
	}
	return b.String()
}

// MaxPolicySize bounds a policy file: a release team's file is a few
// rules; a megabyte is a mistake.
const MaxPolicySize = 1 << 20

// PolicyOptions are what a policy's rules can refer to.
type PolicyOptions struct {
	// TrustedRoot holds the certificate authorities (and transparency
	// logs, timestamp authorities) keyless identities are checked
	// against: a trusted_root.json. Rules with identities need it.
	TrustedRoot root.TrustedMaterial
	// ReadFile reads a key file a rule names (relative names are relative
	// to the policy file's directory); nil is os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// LoadTrustedRoot reads a sigstore trusted_root.json.
func LoadTrustedRoot(file string) (root.TrustedMaterial, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read trusted root: %w", err)
	}
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("read trusted root %s: %w", file, err)
	}
	return tr, nil
}

// LoadPolicy reads and checks a --signature-policy file. Mistakes come
// back as a *PolicyError (file and line each).
func LoadPolicy(file string, opts PolicyOptions) (*Policy, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read signature policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("read signature policy %s: %w", file, err)
	}
	if n := len(data); n > MaxPolicySize {
		return nil, &PolicyError{Errs: []*LineError{{File: file, Msg: fmt.Sprintf("over the limit of %d bytes", MaxPolicySize)}}}
	}
	return ParsePolicy(file, data, opts)
}

// policyCheck collects a file's mistakes.
type policyCheck struct {
	file string
	opts PolicyOptions
	errs []*LineError
}

func (c *policyCheck) bad(line int, format string, a ...any) {
	c.errs = append(c.errs, &LineError{File: c.file, Line: line, Msg: fmt.Sprintf(format, a...)})
}

// fields reads a mapping's keys strictly: every key a scalar, none twice,
// each one of allowed.
func (c *policyCheck) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		c.bad(n.Line, "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			c.bad(k.Line, "%s: keys must be strings", what)
			continue
		}
		if _, dup := out[k.Value]; dup {
			c.bad(k.Line, "%s: duplicate key %q", what, k.Value)
			continue
		}
		known := false
		for _, a := range allowed {
			known = known || a == k.Value
		}
		if !known {
			c.bad(k.Line, "%s: unknown field %q (want %s)", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		out[k.Value] = v
	}
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a scalar"
}

// str reads a string scalar.
func (c *policyCheck) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		c.bad(n.Line, "%s must be a string", what)
		return "", false
	}
	return n.Value, true
}

// strs reads a list of strings (or one string).
func (c *policyCheck) strs(n *yaml.Node, what string) ([]string, []int) {
	if n.Kind == yaml.ScalarNode {
		s, ok := c.str(n, what)
		if !ok {
			return nil, nil
		}
		return []string{s}, []int{n.Line}
	}
	if n.Kind != yaml.SequenceNode {
		c.bad(n.Line, "%s must be a list of strings", what)
		return nil, nil
	}
	var out []string
	var lines []int
	for _, e := range n.Content {
		if s, ok := c.str(e, what+" entry"); ok {
			out = append(out, s)
			lines = append(lines, e.Line)
		}
	}
	return out, lines
}

// ParsePolicy reads a policy file's bytes (file names it in errors and
// is where relative key paths start).
func ParsePolicy(file string, data []byte, opts PolicyOptions) (*Policy, error) {
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	c := &policyCheck{file: file, opts: opts}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 0
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			if _, err2 := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); err2 != nil {
				line = 0
			}
		}
		c.bad(line, "not YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, &PolicyError{Errs: c.errs}
	}
	p := &Policy{File: file}
	if len(doc.Content) == 0 {
		c.bad(1, "empty policy: want a rules list")
		return nil, &PolicyError{Errs: c.errs}
	}
	top := c.fields(doc.Content[0], "policy", "rules")
	if top != nil {
		rules, ok := top["rules"]
		switch {
		case !ok:
			c.bad(doc.Content[0].Line, "policy: no rules")
		case rules.Kind != yaml.SequenceNode:
			c.bad(rules.Line, "rules must be a list, not %s", kindName(rules))
		case len(rules.Content) == 0:
			c.bad(rules.Line, "rules: empty list")
		default:
			names := map[string]int{}
			for _, rn := range rules.Content {
				r := c.rule(rn)
				if r == nil {
					continue
				}
				if l, dup := names[r.Name]; dup {
					c.bad(r.Line, "rule name %q is the rule's at line %d too", r.Name, l)
				}
				names[r.Name] = r.Line
				p.Rules = append(p.Rules, r)
			}
		}
	}
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool { return c.errs[i].Line < c.errs[j].Line })
		return nil, &PolicyError{Errs: c.errs}
	}
	return p, nil
}

func (c *policyCheck) rule(n *yaml.Node) *Rule {
	f := c.fields(n, "rule", "name", "source", "images", "mode", "keys", "identities")
	if f == nil {
		return nil
	}
	r := &Rule{Line: n.Line, Name: fmt.Sprintf("line-%d", n.Line)}
	before := len(c.errs)
	if v, ok := f["name"]; ok {
		if s, ok := c.str(v, "name"); ok {
			if s == "" {
				c.bad(v.Line, "name is empty")
			}
			r.Name = s
		}
	}
	if v, ok := f["source"]; ok {
		if s, ok := c.str(v, "source"); ok {
			r.Source = c.glob(v.Line, "source", s)
		}
	} else {
		c.bad(n.Line, "rule %s: no source (a glob over source registries, e.g. gcr.io/k8s-staging-*)", r.Name)
	}
	if v, ok := f["images"]; ok {
		gs, lines := c.strs(v, "images")
		for i, g := range gs {
			r.Images = append(r.Images, c.glob(lines[i], "images", g))
		}
	}
	if v, ok := f["mode"]; ok {
		if s, ok := c.str(v, "mode"); ok {
			switch Mode(s) {
			case Require, IfPresent:
				r.Mode = Mode(s)
			default:
				c.bad(v.Line, "mode %q: want require or if-present", s)
			}
		}
	} else {
		c.bad(n.Line, "rule %s: no mode (require or if-present)", r.Name)
	}
	if v, ok := f["keys"]; ok {
		files, lines := c.strs(v, "keys")
		for i, kf := range files {
			if k := c.key(lines[i], kf); k != nil {
				r.Trust.Keys = append(r.Trust.Keys, k)
			}
		}
	}
	if v, ok := f["identities"]; ok {
		if v.Kind != yaml.SequenceNode {
			c.bad(v.Line, "identities must be a list, not %s", kindName(v))
		} else {
			for _, e := range v.Content {
				if id, ok := c.identity(e); ok {
					r.Trust.Identities = append(r.Trust.Identities, id)
				}
			}
		}
		if len(r.Trust.Identities) > 0 && c.opts.TrustedRoot == nil {
			c.bad(v.Line, "rule %s: identities need --trusted-root (a sigstore trusted_root.json) to check certificates against", r.Name)
		}
		r.Trust.Root = c.opts.TrustedRoot
	}
	if len(c.errs) == before && len(r.Trust.Keys) == 0 && len(r.Trust.Identities) == 0 {
		c.bad(n.Line, "rule %s: no keys and no identities: nothing could sign", r.Name)
	}
	return r
}

// glob checks a glob (path.Match syntax).
func (c *policyCheck) glob(line int, what, g string) string {
	if g == "" {
		c.bad(line, "%s: empty glob", what)
		return g
	}
	if _, err := path.Match(g, ""); err != nil {
		c.bad(line, "%s: bad glob %q: %v", what, g, err)
	}
	return g
}

func (c *policyCheck) key(line int, file string) *PublicKey {
	p := file
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(c.file), p)
	}
	data, err := c.opts.ReadFile(p)
	if err != nil {
		c.bad(line, "key %s: %v", file, err)
		return nil
	}
	k, err := ParsePublicKey(file, data)
	if err != nil {
		c.bad(line, "key %s is not a public key: %v", file, strings.TrimPrefix(err.Error(), "read public key "+file+": "))
		return nil
	}
	return k
}

func (c *policyCheck) identity(n *yaml.Node) (Identity, bool) {
	f := c.fields(n, "identity", "subject", "subjectRegExp", "issuer", "issuerRegExp")
	if f == nil {
		return Identity{}, false
	}
	var id Identity
	ok := true
	for k, dst := range map[string]*string{"subject": &id.Subject, "subjectRegExp": &id.SubjectRegexp, "issuer": &id.Issuer, "issuerRegExp": &id.IssuerRegexp} {
		if v, has := f[k]; has {
			s, good := c.str(v, k)
			if !good {
				ok = false
				continue
			}
			if strings.HasSuffix(k, "RegExp") {
				if _, err := regexp.Compile(s); err != nil {
					c.bad(v.Line, "%s: bad regular expression %q: %v", k, s, err)
					ok = false
				}
			}
			*dst = s
		}
	}
	if (id.Subject == "") == (id.SubjectRegexp == "") {
		c.bad(n.Line, "identity: give one of subject and subjectRegExp")
		ok = false
	}
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		c.bad(n.Line, "identity: give one of issuer and issuerRegExp")
		ok = false
	}
	return id, ok
}
