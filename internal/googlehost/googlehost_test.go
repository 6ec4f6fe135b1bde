package googlehost

import "testing"

func TestIs(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"gcr.io", true},
		{"us.gcr.io", true},
		{"GCR.IO", true},
		{"us-central1-docker.pkg.dev", true},
		{"europe-west10-docker.pkg.dev", true},
		{"gcr.io:443", true},
		{"marketplace.gcr.io", true},
		{"container.cloud.google.com", true},
		{"registry.k8s.io", false},
		{"127.0.0.1:5000", false},
		{"localhost", false},
		{"notgcr.io", false},
		{"gcr.io.example.com", false},
		{"pkg.dev.example.com", false},
		{"docker.io", false},
		{"[::1]:5000", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := Is(tt.host); got != tt.want {
			t.Errorf("Is(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestOfName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"gcr.io/k8s-staging-foo", true},
		{"us-docker.pkg.dev/k8s-artifacts-prod/images", true},
		{"127.0.0.1:5000/prod", false},
		{"registry.k8s.io", false},
		{"example.com/gcr.io", false},
	}
	for _, tt := range tests {
		if got := OfName(tt.name); got != tt.want {
			t.Errorf("OfName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
