// Package googlehost says which registry hosts are Google's: the only
// registries where a manifest's service-account means anything, since cip
// borrows a service account through gcloud impersonation and the access
// token it gets is good only at Google.
package googlehost

import "strings"

// Is reports whether host (a registry host, with or without a port) is a
// Google registry: gcr.io and its regional hosts (us.gcr.io, …), Artifact
// Registry (*-docker.pkg.dev) and *.google.com. These are the hosts
// go-containerregistry's Google keychain answers for.
func Is(host string) bool {
	host = strings.ToLower(host)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return host == "gcr.io" ||
		strings.HasSuffix(host, ".gcr.io") ||
		strings.HasSuffix(host, ".pkg.dev") ||
		strings.HasSuffix(host, ".google.com")
}

// OfName reports whether the registry name (host[:port]/path) is on a
// Google host.
func OfName(name string) bool {
	host, _, _ := strings.Cut(name, "/")
	return Is(host)
}
