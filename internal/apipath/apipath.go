// Package apipath names what an OCI distribution API request is for, from
// its URL path. The registry client counts requests by these names, and so
// do the test registry, the fault proxy and the bench harness, so that
// their counts compare. It imports nothing of cip's, so every package
// (tests included) can use it without an import cycle.
package apipath

import "strings"

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
