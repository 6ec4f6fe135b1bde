package manifest

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The validators return an error that does not repeat the value; callers
// name it, e.g. fmt.Errorf("digest %q: %w", d, err), as the loader does.

const digestWant = "invalid digest: want sha256: followed by 64 lowercase hex characters"

var errTag = errors.New("invalid tag: want a letter, digit or underscore, then up to 127 letters, digits, underscores, periods or dashes")

// ValidateDigest checks that d is "sha256:" followed by 64 lowercase hex
// characters, the only digest form the promoter copies by.
func ValidateDigest(d string) error {
	const prefix = "sha256:"
	if !strings.HasPrefix(d, prefix) {
		if alg, _, ok := strings.Cut(d, ":"); ok {
			return fmt.Errorf("%s, got algorithm %q", digestWant, alg)
		}
		return fmt.Errorf("%s, got no sha256: prefix", digestWant)
	}
	for i := len(prefix); i < len(d); i++ {
		c := d[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%s, got %q at position %d", digestWant, c, i+1)
		}
	}
	if n := len(d) - len(prefix); n != 64 {
		return fmt.Errorf("%s, got %d", digestWant, n)
	}
	return nil
}

// ValidateTag checks t against the OCI distribution tag grammar
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func ValidateTag(t string) error {
	if len(t) == 0 || len(t) > 128 || !isWord(t[0]) {
		return errTag
	}
	for i := 1; i < len(t); i++ {
		if c := t[i]; !isWord(c) && c != '.' && c != '-' {
			return errTag
		}
	}
	return nil
}

func isWord(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// ValidateImageName checks that name is a repository path: one or more
// components separated by "/", each matching the OCI distribution grammar
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func ValidateImageName(name string) error {
	if name == "" {
		return errors.New("invalid image name: empty")
	}
	if err := validatePath(name); err != nil {
		return fmt.Errorf("invalid image name: %w", err)
	}
	return nil
}

// ValidateRegistryName checks that name is host[:port][/path]: host a DNS
// name, an IPv4 address or a bracketed IPv6 address, port 1-65535, and path
// components as in ValidateImageName. The path is optional so that a
// registry serving repositories at its root (a local docker-registry) can
// be named.
func ValidateRegistryName(name string) error {
	if err := validateRegistryName(name); err != nil {
		return fmt.Errorf("invalid registry name: %w", err)
	}
	return nil
}

// RedactCredentials hides what stands before an @ in a registry name's host
// part (user:password@host), so that error messages never carry it.
func RedactCredentials(name string) string {
	hostport, rest, hasPath := strings.Cut(name, "/")
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		hostport = "REDACTED@" + hostport[i+1:]
	}
	if hasPath {
		return hostport + "/" + rest
	}
	return hostport
}

func validateRegistryName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if strings.Contains(name, "://") {
		return errors.New("want host[:port]/path without a scheme")
	}
	hostport, path, hasPath := strings.Cut(name, "/")
	if strings.Contains(hostport, "@") {
		// Never echo what stands before the @: it is likely a password.
		return errors.New("credentials in a registry name are not allowed (put them in the docker config)")
	}
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return fmt.Errorf("host %q: missing ] after IPv6 address", hostport)
		}
		host = hostport[1:end]
		rest := hostport[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return fmt.Errorf("host %q: want [IPv6]:port", hostport)
			}
			port = rest[1:]
			if port == "" {
				return fmt.Errorf("port in %q: empty", hostport)
			}
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return fmt.Errorf("host %q: want an IPv6 address inside []", host)
		}
	} else {
		if h, p, ok := strings.Cut(hostport, ":"); ok {
			host, port = h, p
			if port == "" {
				return fmt.Errorf("port in %q: empty", hostport)
			}
		}
		if !isDNSName(host) {
			return fmt.Errorf("host %q: want a DNS name or IP address", host)
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("port %q: want a number from 1 to 65535", port)
		}
	}
	if hasPath {
		if path == "" {
			return errors.New("empty path after host")
		}
		return validatePath(path)
	}
	return nil
}

// isDNSName reports whether s is a DNS name (labels of letters, digits and
// inner hyphens, each at most 63 bytes, at most 253 bytes in all). IPv4
// addresses satisfy this grammar too.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validatePath(path string) error {
	for _, comp := range strings.Split(path, "/") {
		if comp == "" {
			return errors.New("empty path component (leading, trailing or double /)")
		}
		if !isPathComponent(comp) {
			return fmt.Errorf("path component %q: want lowercase letters and digits, separated by '.', '_', '__' or dashes", comp)
		}
	}
	return nil
}

// isPathComponent matches [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func isPathComponent(s string) bool {
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	i := 0
	for {
		// One run of [a-z0-9]+.
		start := i
		for i < len(s) && alnum(s[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(s) {
			return true
		}
		// One separator.
		switch {
		case s[i] == '.':
			i++
		case s[i] == '_':
			i++
			if i < len(s) && s[i] == '_' {
				i++
			}
		case s[i] == '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}
