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

func TestProject(t *testing.T) {
	tests := []struct{ path, query, want string }{
		{"/v2/k8s-staging-foo/img/manifests/sha256:abc", "", "k8s-staging-foo"},
		{"/v2/k8s-artifacts-prod/images/kube-proxy/tags/list", "n=1000", "k8s-artifacts-prod"},
		{"/v2/proj/img/blobs/uploads/", "mount=sha256:x&from=other/img", "proj"},
		{"/v2/proj/img/referrers/sha256:abc", "", "proj"},
		{"/v2/img/manifests/latest", "", "img"},
		{"/v2/", "", ""},
		{"/v2", "", ""},
		{"/v2/_catalog", "n=100", ""},
		{"/v2/token", "scope=repository%3Ak8s-staging-foo%2Fimg%3Apull&service=x", "k8s-staging-foo"},
		{"/v2/token", "service=x&scope=repository:a/b:pull,push&scope=repository:c/d:pull", "a"},
		{"/token", "scope=repository%3Aproj%2Fimg%3Apull", "proj"},
		{"/v2/token", "scope=registry%3Acatalog%3A%2A", ""},
		{"/v2/token", "service=x", ""},
	}
	for _, tt := range tests {
		if got := Project(tt.path, tt.query); got != tt.want {
			t.Errorf("Project(%q, %q) = %q, want %q", tt.path, tt.query, got, tt.want)
		}
	}
}
