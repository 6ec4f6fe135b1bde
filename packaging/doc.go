// Package packaging holds no code: its tests check how cip is shipped. The
// krew manifest plugins.yaml is decoded with krew's own types
// (sigs.k8s.io/krew/pkg/index) and held to krew's validation rules, and
// scripts/dist.sh is run twice, from two directories, to show that its
// archives are reproducible byte for byte (which is what lets the sha256 in
// plugins.yaml be checked by anyone who rebuilds the release commit).
//
// krew and the Kubernetes apimachinery it brings are imported by these tests
// only; no cip binary links them.
package packaging
