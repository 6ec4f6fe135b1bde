package registry

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Redacted replaces every secret Redact removes.
const Redacted = "REDACTED"

var (
	// An Authorization header's credentials (Basic base64, Bearer token),
	// however a registry echoes them. The scheme's own parameters (Bearer
	// realm="…") are left alone: see redactAuth.
	authRE = regexp.MustCompile(`(?i)\b(basic|bearer)(\s+)([A-Za-z0-9+/._~-]+=*)`)
	// Secrets as JSON members ("token": "…", "password": "…", a docker
	// config's "auth").
	jsonSecretRE = regexp.MustCompile(`(?i)("(?:authorization|password|passwd|secret|token|access_token|refresh_token|id_token|identitytoken|registrytoken|auth)"\s*:\s*")((?:[^"\\]|\\.)*)(")`)
	// Secrets as query or form parameters: an upload session's _state, a
	// token, a signed URL's signature.
	querySecretRE = regexp.MustCompile(`(?i)([?&;](?:_state|access_token|refresh_token|id_token|token|password|signature|sig|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=)([^&\s"'<>]+)`)
	// A JSON Web Token wherever it stands (registry tokens are JWTs).
	jwtRE = regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	// URLs, whose query parameters are redacted but for those the
	// distribution protocol itself sends.
	urlRE = regexp.MustCompile(`https?://[^\s"'<>]+`)
)

// queryAllowed are the query parameters of the distribution and token
// protocols, which hold no secret; any other may (a redirect to blob
// storage carries a signature, an upload location its session state).
var queryAllowed = map[string]bool{"scope": true, "service": true, "mount": true, "from": true, "digest": true, "n": true, "last": true}

// Redact removes credentials from s: Basic and Bearer credentials however
// they are quoted, secret JSON members and query parameters (an upload's
// _state, tokens, signatures), JSON Web Tokens, and every query parameter
// of a URL that the distribution protocol does not define. cip applies it
// to every error a Client returns and every record its Transport logs, so
// that a registry echoing a request's Authorization header in an error
// body cannot put credentials on stderr, in the inventory or in a report.
func Redact(s string) string {
	if !maySecret(s) {
		return s // most strings (a host, a method, a kind): no regexp run
	}
	s = urlRE.ReplaceAllStringFunc(s, redactURL)
	s = querySecretRE.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.IndexByte(m, '=') + 1
		if strings.HasPrefix(m[i:], Redacted) {
			return m // a URL's, done above
		}
		return m[:i] + Redacted
	})
	s = jsonSecretRE.ReplaceAllString(s, "${1}"+Redacted+"${3}")
	s = redactAuth(s)
	return jwtRE.ReplaceAllString(s, Redacted)
}

// maySecret reports whether s could hold anything Redact removes: each
// pattern needs '=', a quote, "://", "eyJ", "basic" or "bearer".
func maySecret(s string) bool {
	if strings.ContainsAny(s, "=\"") || strings.Contains(s, "://") || strings.Contains(s, "eyJ") {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i]|0x20 == 'b' && (i+5 <= len(s) && strings.EqualFold(s[i:i+5], "basic") || i+6 <= len(s) && strings.EqualFold(s[i:i+6], "bearer")) {
			return true
		}
	}
	return false
}

// redactAuth replaces the credentials after "Basic" or "Bearer", but not a
// challenge's own parameters (Bearer realm="…",service="…").
func redactAuth(s string) string {
	idx := authRE.FindAllStringSubmatchIndex(s, -1)
	if idx == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range idx {
		start, end := m[6], m[7]
		cred := s[start:end]
		if strings.HasSuffix(cred, "=") && challengeParams[strings.ToLower(strings.TrimRight(cred, "="))] || cred == Redacted {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(Redacted)
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// challengeParams are the parameters of a WWW-Authenticate challenge
// (RFC 6750 and the distribution token protocol).
var challengeParams = map[string]bool{"realm": true, "service": true, "scope": true, "error": true, "error_description": true, "error_uri": true, "charset": true}

func redactURL(raw string) string {
	// Trailing punctuation belongs to the sentence, not the URL.
	trimmed := strings.TrimRight(raw, ".,;:)]}")
	tail := raw[len(trimmed):]
	u, err := url.Parse(trimmed)
	if err != nil {
		return raw
	}
	changed := false
	if u.User != nil {
		u.User = url.User(Redacted)
		changed = true
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = Redacted
			changed = true
		} else {
			for k, vs := range q {
				if queryAllowed[k] {
					continue
				}
				for i := range vs {
					if vs[i] != Redacted {
						vs[i] = Redacted
						changed = true
					}
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
	}
	if !changed {
		return raw
	}
	return u.String() + tail
}

// redactedError is an error whose message had credentials removed; it
// unwraps to the original, for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// secrets are the credentials a run has handed out (passwords, tokens):
// Redact's patterns catch them as a registry usually echoes them; this
// catches them however it does.
type secrets struct {
	mu   sync.RWMutex
	list []string
}

// minSecret is the shortest credential removed by value: shorter strings
// occur in ordinary text (the patterns still catch them as credentials).
const minSecret = 4

func (s *secrets) add(v string) {
	if len(v) < minSecret {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.list, v) {
		s.list = append(s.list, v)
	}
}

// redact is Redact, and every known secret replaced.
func (s *secrets) redact(v string) string {
	v = Redact(v)
	if s == nil {
		return v
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sec := range s.list {
		v = strings.ReplaceAll(v, sec, Redacted)
	}
	return v
}

// redacted returns err with its message redacted (err itself when there is
// nothing to remove).
func (s *secrets) redacted(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := s.redact(msg); r != msg {
		return &redactedError{msg: r, err: err}
	}
	return err
}

// recording returns auth, remembering the credentials it hands out as
// secrets to redact (authn.Anonymous as itself: go-containerregistry
// tells it by identity).
func (s *secrets) recording(auth authn.Authenticator) authn.Authenticator {
	if auth == authn.Anonymous {
		return auth
	}
	return recordingAuth{auth, s}
}

// recordingAuth hands out an authenticator's credentials, remembering them
// as secrets to redact.
type recordingAuth struct {
	authn.Authenticator
	secrets *secrets
}

func (a recordingAuth) Authorization() (*authn.AuthConfig, error) {
	cfg, err := a.Authenticator.Authorization()
	if err == nil && cfg != nil {
		for _, v := range []string{cfg.Password, cfg.Auth, cfg.IdentityToken, cfg.RegistryToken} {
			a.secrets.add(v)
		}
		if cfg.Password != "" {
			a.secrets.add(base64.StdEncoding.EncodeToString([]byte(cfg.Username + ":" + cfg.Password)))
		}
	}
	return cfg, err
}

// RedactHandler wraps a slog.Handler so that every record's message and
// string, error and Stringer attributes pass through Redact.
func RedactHandler(h slog.Handler) slog.Handler { return redactingHandler(h, nil) }

func redactingHandler(h slog.Handler, s *secrets) slog.Handler {
	if r, ok := h.(redactHandler); ok && r.s == s {
		return h
	}
	return redactHandler{h: h, s: s}
}

type redactHandler struct {
	h slog.Handler
	s *secrets // nil: patterns only
}

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, r.s.redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = r.attr(a)
	}
	return redactHandler{h: r.h.WithAttrs(red), s: r.s}
}

func (r redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h: r.h.WithGroup(name), s: r.s}
}

func (r redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.s.redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = r.attr(ga)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, r.s.redact(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, r.s.redact(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
