package sign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
)

// Signer makes cosign v3 image signatures (sigstore bundles): with a key
// pair (*Key) or keyless (*Keyless).
type Signer interface {
	// SignBundle signs digest, claiming identity, with annotations.
	SignBundle(ctx context.Context, digest, identity string, annotations map[string]string) ([]byte, error)
	// SignStatement signs an in-toto statement (an attestation).
	SignStatement(ctx context.Context, statement []byte) ([]byte, error)
	// Trust is what the signer's own signatures verify against, to tell
	// that a digest is signed already; nil when it cannot tell.
	Trust() *Trust
}

// Trust is what k's signatures verify against: its public key.
func (k *Key) Trust() *Trust { return &Trust{Keys: []*PublicKey{k.Public}} }

// Keyless signs with an ephemeral key and a short-lived certificate from
// Fulcio for the holder of an OIDC identity token, the signature logged in
// Rekor when a Rekor URL is given: sigstore's keyless flow (sigstore-go's
// Fulcio and Rekor clients). Nothing in it works offline: each SignBundle
// asks Fulcio (and Rekor).
type Keyless struct {
	FulcioURL, RekorURL string
	// IDToken is the OIDC identity token (a JWT) Fulcio vouches for.
	IDToken string
	// Root, when set, is the trusted root Fulcio's certificates (and
	// Rekor's entries) chain to: what tells that a digest is signed already.
	Root root.TrustedMaterial
	// Timeout bounds each request to Fulcio and Rekor (0: 30 s, sigstore-go's
	// default).
	Timeout time.Duration
}

// NewKeyless checks the token (a JWT with an issuer and a subject or a
// verified email) and the URLs.
func NewKeyless(fulcioURL, rekorURL, idToken string, trusted root.TrustedMaterial) (*Keyless, error) {
	if !strings.HasPrefix(fulcioURL, "https://") && !strings.HasPrefix(fulcioURL, "http://") {
		return nil, fmt.Errorf("keyless signing: Fulcio URL %q is no http(s) URL", fulcioURL)
	}
	if rekorURL != "" && !strings.HasPrefix(rekorURL, "https://") && !strings.HasPrefix(rekorURL, "http://") {
		return nil, fmt.Errorf("keyless signing: Rekor URL %q is no http(s) URL", rekorURL)
	}
	k := &Keyless{FulcioURL: strings.TrimSuffix(fulcioURL, "/"), RekorURL: strings.TrimSuffix(rekorURL, "/"), IDToken: strings.TrimSpace(idToken), Root: trusted}
	if _, err := k.identity(); err != nil {
		return nil, err
	}
	return k, nil
}

// tokenClaims are the claims of an identity token Fulcio puts in its
// certificate: the subject (a verified email wins over sub) and issuer.
type tokenClaims struct {
	Issuer        string `json:"iss"`
	Subject       string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified any    `json:"email_verified"`
}

// identity reads the token's claims, unverified (Fulcio verifies the
// token): the identity Fulcio's certificate will carry.
func (k *Keyless) identity() (Identity, error) {
	parts := strings.Split(k.IDToken, ".")
	if len(parts) != 3 {
		return Identity{}, errors.New("keyless signing: the identity token is no JWT (three dot-separated parts)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Identity{}, fmt.Errorf("keyless signing: identity token payload: %w", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return Identity{}, fmt.Errorf("keyless signing: identity token claims: %w", err)
	}
	sub := c.Subject
	if c.Email != "" {
		sub = c.Email
	}
	if c.Issuer == "" || sub == "" {
		return Identity{}, errors.New("keyless signing: the identity token names no issuer (iss) or no subject (sub, email)")
	}
	return Identity{Subject: sub, Issuer: c.Issuer}, nil
}

// Trust is the token's identity against Root: nil without a root.
func (k *Keyless) Trust() *Trust {
	if k.Root == nil {
		return nil
	}
	id, err := k.identity()
	if err != nil {
		return nil
	}
	return &Trust{Identities: []Identity{id}, Root: k.Root}
}

// SignBundle asks Fulcio for a certificate for a new ephemeral key,
// signs, and logs the signature in Rekor (when a Rekor URL is given).
func (k *Keyless) SignBundle(ctx context.Context, digest, identity string, annotations map[string]string) ([]byte, error) {
	st, err := imageStatement(digest, identity, annotations, CosignSignPredicate, map[string]any{})
	if err != nil {
		return nil, fmt.Errorf("sign %s keyless: %w", digest, err)
	}
	b, err := k.SignStatement(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("sign %s %w", digest, err)
	}
	return b, nil
}

// SignStatement signs an in-toto statement keyless.
func (k *Keyless) SignStatement(ctx context.Context, st []byte) ([]byte, error) {
	kp, err := sgsign.NewEphemeralKeypair(nil)
	if err != nil {
		return nil, fmt.Errorf("keyless: %w", err)
	}
	opts := sgsign.BundleOptions{
		Context:                    ctx,
		CertificateProvider:        sgsign.NewFulcio(&sgsign.FulcioOptions{BaseURL: k.FulcioURL, Timeout: k.Timeout, Retries: 1}),
		CertificateProviderOptions: &sgsign.CertificateProviderOptions{IDToken: k.IDToken},
	}
	if k.RekorURL != "" {
		opts.TransparencyLogs = []sgsign.Transparency{sgsign.NewRekor(&sgsign.RekorOptions{BaseURL: k.RekorURL, Timeout: k.Timeout, Retries: 1})}
	}
	b, err := signStatement(kp, st, opts)
	if err != nil {
		// sigstore-go's clients name the URL they failed on.
		msg := err.Error()
		switch {
		case strings.Contains(msg, k.FulcioURL+"/api/"):
			return nil, fmt.Errorf("keyless: get a certificate from Fulcio at %s: %w", k.FulcioURL, err)
		case k.RekorURL != "" && strings.Contains(msg, k.RekorURL+"/api/"):
			return nil, fmt.Errorf("keyless: log the signature in Rekor at %s: %w", k.RekorURL, err)
		}
		return nil, fmt.Errorf("keyless: %w", err)
	}
	return b, nil
}
