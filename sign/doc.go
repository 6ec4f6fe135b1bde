// Package sign verifies and makes the signatures cosign writes beside an
// image: the sha256-<hex>.sig tag's simple signing payloads, and sigstore
// bundles (v0.3, a DSSE envelope around an in-toto statement) attached as
// OCI referrers. Verification is by public key (a PEM file, what `cosign
// generate-key-pair` writes to cosign.pub) or by keyless identity (a
// certificate subject and OIDC issuer) against a sigstore trusted root
// (trusted_root.json), offline. Signing is by a cosign key pair
// (cosign.key, scrypt-encrypted).
//
// A Policy (LoadPolicy, the --signature-policy file) says which images
// need which signatures; Rule.Check judges one digest's signatures.
//
// The package does no I/O of its own beyond reading the files it is
// given: callers fetch referrer manifests and blobs (Read takes a
// FetchBlob) and push what it builds (BundleReferrer, SimpleSigningImage).
// The cryptography is sigstore-go's (bundles, DSSE, certificate chains)
// and sigstore's signature package (keys).
package sign
