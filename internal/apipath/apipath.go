// Package apipath names what an OCI distribution API request is for, from
// its URL path. The registry client counts requests by these names, and so
// do the test registry, the fault proxy and the bench harness, so that
// their counts compare. It imports nothing of cip's, so every package
// (tests included) can use it without an import cycle.
package apipath

import (
	"net/url"
	"strings"
)

// Kind returns manifest, blob, upload, tags, catalog, referrers, ping or
// other.
func Kind(p string) string {
	switch {
	case strings.HasSuffix(p, "/tags/list"):
		return "tags"
	case strings.HasSuffix(p, "/_catalog"):
		return "catalog"
	case strings.Contains(p, "/referrers/"):
		return "referrers"
	case strings.Contains(p, "/manifests/"):
		return "manifest"
	case strings.Contains(p, "/blobs/uploads"):
		return "upload"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	case p == "/v2/" || p == "/v2":
		return "ping"
	}
	return "other"
}

// Project returns the project a request counts against on a registry
// whose quota is per project (Artifact Registry, gcr.io): the first
// component of the repository it names, from the path (/v2/PROJECT/...),
// or for a request that names none in its path (a token request), from
// its first scope parameter (repository:PROJECT/...:pull). It returns ""
// for a request of no repository (a ping, the catalog).
func Project(p, rawQuery string) string {
	if rest, ok := strings.CutPrefix(p, "/v2/"); ok {
		if first, _, ok := strings.Cut(rest, "/"); ok && first != "" {
			return first
		}
	}
	if !strings.Contains(rawQuery, "scope=") {
		return ""
	}
	for part := range strings.SplitSeq(rawQuery, "&") {
		v, ok := strings.CutPrefix(part, "scope=")
		if !ok {
			continue
		}
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		// repository:NAME:ACTIONS; take the first of a space-separated list.
		v, _, _ = strings.Cut(v, " ")
		name, ok := strings.CutPrefix(v, "repository:")
		if !ok {
			return ""
		}
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name = name[:i]
		}
		first, _, _ := strings.Cut(name, "/")
		return first
	}
	return ""
}
