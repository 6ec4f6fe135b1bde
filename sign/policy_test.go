package sign

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// policyFiles writes a policy and two keys (a.pub, b.pub) and a private
// key (a.key) into a directory; it returns the policy's path.
func policyFiles(t *testing.T, policy string) (string, *Key, *Key) {
	t.Helper()
	dir := t.TempDir()
	a, b := newKey(t, "a.pub"), newKey(t, "b.pub")
	for name, data := range map[string][]byte{"a.pub": a.Public.PEM(), "b.pub": b.Public.PEM(), "a.key": encryptedKey(t), "policy.yaml": []byte(policy)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "policy.yaml"), a, b
}

// encryptedKey is a cosign.key, made once: scrypt is slow by design (a
// second or more under the race detector).
var encryptedKey = func() func(t *testing.T) []byte {
	var once sync.Once
	var enc []byte
	return func(t *testing.T) []byte {
		once.Do(func() {
			var err error
			if enc, err = EncryptKey(mustECDSA(t), []byte("pw")); err != nil {
				t.Fatal(err)
			}
		})
		return enc
	}
}()

func TestLoadPolicy(t *testing.T) {
	file, a, _ := policyFiles(t, `rules:
  - name: staging
    source: gcr.io/k8s-staging-*
    images: [pause, "kube-*"]
    mode: require
    keys: [a.pub]
  - name: rest
    source: "*"
    mode: if-present
    keys: b.pub
`)
	p, err := LoadPolicy(file, PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 2 || p.Rules[0].Name != "staging" || p.Rules[0].Line != 2 || p.Rules[0].Mode != Require || !p.Rules[0].Trust.Keys[0].Equal(a.Public) {
		t.Fatalf("LoadPolicy = %+v", p.Rules)
	}
	for _, c := range []struct{ src, image, want string }{
		{"gcr.io/k8s-staging-foo", "pause", "staging"},
		{"gcr.io/k8s-staging-foo", "kube-proxy", "staging"},
		{"gcr.io/k8s-staging-foo", "etcd", ""},
		{"gcr.io/k8s-staging-foo/sub", "pause", ""},
		{"localhost:5000", "etcd", "rest"},
	} {
		got := ""
		if r := p.Match(c.src, c.image); r != nil {
			got = r.Name
		}
		if got != c.want {
			t.Errorf("Match(%s, %s) = %q, want %q", c.src, c.image, got, c.want)
		}
	}
}

func TestLoadPolicyErrors(t *testing.T) {
	for _, c := range []struct {
		name, policy string
		want         []string // "line: text" each
	}{
		{"unknown field", "rules:\n  - source: x\n    mode: require\n    keys: [a.pub]\n    colour: red\n", []string{`5: rule: unknown field "colour"`}},
		{"duplicate key", "rules:\n  - source: x\n    mode: require\n    mode: if-present\n    keys: [a.pub]\n", []string{`4: rule: duplicate key "mode"`}},
		{"private key as public", "rules:\n  - source: x\n    mode: require\n    keys:\n      - a.key\n", []string{"5: key a.key is not a public key"}},
		{"missing key file", "rules:\n  - source: x\n    mode: require\n    keys: [nope.pub]\n", []string{"4: key nope.pub:"}},
		{"bad glob", "rules:\n  - source: \"gcr.io/[x\"\n    mode: require\n    keys: [a.pub]\n", []string{`2: source: bad glob "gcr.io/[x"`}},
		{"bad image glob", "rules:\n  - source: x\n    images:\n      - ok\n      - \"[\"\n    mode: require\n    keys: [a.pub]\n", []string{`5: images: bad glob "["`}},
		{"bad mode", "rules:\n  - source: x\n    mode: always\n    keys: [a.pub]\n", []string{`3: mode "always"`}},
		{"no source, no mode", "rules:\n  - keys: [a.pub]\n", []string{"2: rule line-2: no source", "2: rule line-2: no mode"}},
		{"nothing trusted", "rules:\n  - source: x\n    mode: require\n", []string{"2: rule line-2: no keys and no identities"}},
		{"identities without root", "rules:\n  - source: x\n    mode: require\n    identities:\n      - subject: a@b\n        issuer: https://i\n", []string{"5: rule line-2: identities need --trusted-root"}},
		{"identity half", "rules:\n  - source: x\n    mode: require\n    keys: [a.pub]\n    identities:\n      - subject: a@b\n", []string{"6: identity: give one of issuer and issuerRegExp"}},
		{"bad regexp", "rules:\n  - source: x\n    mode: require\n    keys: [a.pub]\n    identities:\n      - subjectRegExp: \"(\"\n        issuer: i\n", []string{`6: subjectRegExp: bad regular expression "("`}},
		{"not yaml", "rules: [\n", []string{"not YAML"}},
		{"top-level unknown", "rule:\n  - source: x\n", []string{`1: policy: unknown field "rule"`, "1: policy: no rules"}},
		{"empty", "", []string{"1: empty policy"}},
		{"duplicate names", "rules:\n  - {name: a, source: x, mode: require, keys: [a.pub]}\n  - {name: a, source: y, mode: require, keys: [a.pub]}\n", []string{`3: rule name "a" is the rule's at line 2 too`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file, _, _ := policyFiles(t, c.policy)
			_, err := LoadPolicy(file, PolicyOptions{})
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("LoadPolicy = %v, want a *PolicyError", err)
			}
			if len(pe.Errs) != len(c.want) {
				t.Errorf("LoadPolicy = %d errors, want %d:\n%v", len(pe.Errs), len(c.want), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), file+":"+w) && !strings.Contains(err.Error(), w) {
					t.Errorf("LoadPolicy error lacks %q:\n%v", w, err)
				}
				if strings.Contains(w, ": ") && !strings.Contains(err.Error(), file+":"+w) {
					t.Errorf("LoadPolicy error lacks %q at file:line:\n%v", file+":"+w, err)
				}
			}
		})
	}
}

func TestRuleCheck(t *testing.T) {
	file, a, b := policyFiles(t, "rules:\n  - {name: req, source: s, mode: require, keys: [a.pub]}\n  - {name: opt, source: o, mode: if-present, keys: [a.pub]}\n")
	p, err := LoadPolicy(file, PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req, opt := p.Match("s", "i"), p.Match("o", "i")
	dg := digestOf("img")
	byA, _ := a.SignBundle(context.Background(), dg, "", nil)
	pb, sb, _ := b.SignSimple(dg, "", nil)
	good := Signature{Format: Bundle, Bundle: byA, Referrer: "sha256:r1"}
	bad := Signature{Format: SimpleSigning, Payload: pb, Sig: sb, Referrer: "sha256:r2"}
	for _, c := range []struct {
		name   string
		rule   *Rule
		sigs   []Signature
		signed bool
		want   Reason
	}{
		{"require, signed by a", req, []Signature{bad, good}, true, ""},
		{"require, unsigned", req, nil, false, NoSignature},
		{"require, signed by b only", req, []Signature{bad}, false, UnknownKey},
		{"if-present, unsigned", opt, nil, false, ""},
		{"if-present, signed by b only", opt, []Signature{bad}, false, UnknownKey},
		{"if-present, signed by a", opt, []Signature{good}, true, ""},
	} {
		v, signed, err := c.rule.Check(dg, c.sigs)
		if signed != c.signed || reason(err) != c.want {
			t.Errorf("%s: Check = %+v, %v, %v; want signed %v, reason %q", c.name, v, signed, err, c.signed, c.want)
		}
		if signed && v.By != "a.pub" {
			t.Errorf("%s: signed by %q, want a.pub", c.name, v.By)
		}
	}
}

// FuzzParsePolicy: no input makes the parser panic, and what it accepts
// has rules each with a source, a mode and something to trust.
func FuzzParsePolicy(f *testing.F) {
	k, err := NewKey("k", mustECDSA(f))
	if err != nil {
		f.Fatal(err)
	}
	pub := k.Public.PEM()
	for _, s := range []string{
		"rules:\n  - source: x\n    mode: require\n    keys: [a.pub]\n",
		"rules:\n  - {name: a, source: \"gcr.io/*\", images: [\"p*\"], mode: if-present, keys: a.pub}\n",
		"rules:\n  - source: x\n    mode: require\n    identities:\n      - {subjectRegExp: \".*\", issuer: i}\n",
		"rules: &a [*a]\n", "{}", "rules:\n  - source: [\n",
	} {
		f.Add([]byte(s))
	}
	read := func(string) ([]byte, error) { return pub, nil }
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy("p.yaml", data, PolicyOptions{ReadFile: read})
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || len(pe.Errs) == 0 {
				t.Fatalf("ParsePolicy error %v is no *PolicyError with errors", err)
			}
			return
		}
		if len(p.Rules) == 0 {
			t.Fatal("accepted a policy without rules")
		}
		for _, r := range p.Rules {
			if r.Source == "" || (r.Mode != Require && r.Mode != IfPresent) || len(r.Trust.Keys)+len(r.Trust.Identities) == 0 {
				t.Fatalf("accepted rule %+v", r)
			}
			p.Match(r.Source, "x")
		}
	})
}
