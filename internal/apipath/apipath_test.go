package apipath

import "testing"

func TestKind(t *testing.T) {
	tests := map[string]string{
		"/v2/":                              "ping",
		"/v2/_catalog":                      "catalog",
		"/v2/a/b/tags/list":                 "tags",
		"/v2/a/manifests/v1":                "manifest",
		"/v2/a/blobs/sha256:00":             "blob",
		"/v2/a/blobs/uploads/":              "upload",
		"/v2/a/blobs/uploads/uuid?digest=x": "upload",
		"/v2/a/referrers/sha256:00":         "referrers",
		"/healthz":                          "other",
	}
	for p, want := range tests {
		if got := Kind(p); got != want {
			t.Errorf("Kind(%q) = %q, want %q", p, got, want)
		}
	}
}
