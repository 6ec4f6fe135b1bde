package app

import (
	"os"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/sign"
)

var (
	signaturePolicyFlag = &cli.StringFlag{Name: "signature-policy", EnvVars: []string{"CIP_SIGNATURE_POLICY"},
		Usage: "check the signatures of every digest the plan would write against the rules in `FILE` (YAML); a digest that fails refuses the run (exit 2, nothing written)"}
	signKeyFlag = &cli.StringFlag{Name: "sign-key", EnvVars: []string{"CIP_SIGN_KEY"},
		Usage: "with --confirm, sign each promoted digest once with the cosign key pair `FILE` (cosign.key; its password from CIP_SIGN_KEY_PASSWORD or COSIGN_PASSWORD), in its first destination, and copy the signature to the others"}
	signIdentityFlag = &cli.StringFlag{Name: "sign-identity", EnvVars: []string{"CIP_SIGN_IDENTITY"},
		Usage: "the image reference each signature claims, `REF` with {image} for the image's name (e.g. registry.k8s.io/{image}); default: the first destination's repository"}
	signOIDCTokenFlag = &cli.StringFlag{Name: "sign-oidc-token", EnvVars: []string{"CIP_SIGN_OIDC_TOKEN"},
		Usage: "sign keyless instead of with --sign-key: an OIDC identity token in `FILE` for which --fulcio-url issues a certificate (sigstore's keyless flow; needs those services)"}
	fulcioURLFlag = &cli.StringFlag{Name: "fulcio-url", EnvVars: []string{"CIP_FULCIO_URL"},
		Usage: "the Fulcio certificate authority keyless signing asks (`URL`, e.g. https://fulcio.sigstore.dev)"}
	rekorURLFlag = &cli.StringFlag{Name: "rekor-url", EnvVars: []string{"CIP_REKOR_URL"},
		Usage: "the Rekor transparency log keyless signatures are logged in (`URL`, e.g. https://rekor.sigstore.dev; none: not logged)"}
	attestPromotionFlag = &cli.BoolFlag{Name: "attest-promotion", EnvVars: []string{"CIP_ATTEST_PROMOTION"},
		Usage: "with --sign-key or --sign-oidc-token, also attach a signed promotion record (an in-toto attestation: source, destinations, time, cip's version) to each promoted digest, once"}
	trustedRootFlag = &cli.StringFlag{Name: "trusted-root", EnvVars: []string{"CIP_TRUSTED_ROOT"},
		Usage: "sigstore trusted root (`FILE`, trusted_root.json) that keyless identities in the signature policy (and, with --sign-oidc-token, cip's own keyless signatures) are checked against, offline"}
)

// signatureFlags are promote's flags about signatures.
func signatureFlags() []cli.Flag {
	return []cli.Flag{signaturePolicyFlag, trustedRootFlag, signKeyFlag, signIdentityFlag, signOIDCTokenFlag, fulcioURLFlag, rekorURLFlag, attestPromotionFlag}
}

// signaturePolicyOf reads --signature-policy (and --trusted-root): nil
// when none is given; a mistake in either file exits 2.
func signaturePolicyOf(c *cli.Context) (*sign.Policy, error) {
	file := c.String("signature-policy")
	if file == "" {
		if c.String("trusted-root") != "" && c.String("sign-oidc-token") == "" {
			return nil, usagef("--trusted-root is only read with --signature-policy or --sign-oidc-token")
		}
		return nil, nil
	}
	var opts sign.PolicyOptions
	root, err := trustedRootOf(c)
	if err != nil {
		return nil, err
	}
	opts.TrustedRoot = root
	// Every failure to read either file is the user's to fix: exit 2 (a
	// *sign.PolicyError lists the file's mistakes by line).
	p, err := sign.LoadPolicy(file, opts)
	if err != nil {
		return nil, &usageError{err}
	}
	return p, nil
}

// signKeyPasswordEnv holds --sign-key's password; cosign's own variable
// is read when it is unset.
const signKeyPasswordEnv = "CIP_SIGN_KEY_PASSWORD"

// signingOf reads --sign-key (and --sign-identity): nil when no key is
// given; a key that cannot be read or decrypted exits 2.
func signingOf(c *cli.Context) (*promote.Signing, error) {
	file, token := c.String("sign-key"), c.String("sign-oidc-token")
	switch {
	case file != "" && token != "":
		return nil, usagef("give --sign-key or --sign-oidc-token, not both")
	case token != "":
		return keylessOf(c, token)
	case c.String("fulcio-url") != "" || c.String("rekor-url") != "":
		return nil, usagef("--fulcio-url and --rekor-url are only used with --sign-oidc-token")
	case file == "":
		if c.String("sign-identity") != "" || c.Bool("attest-promotion") {
			return nil, usagef("--sign-identity and --attest-promotion are only used with --sign-key or --sign-oidc-token")
		}
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("read --sign-key: %v", err)
	}
	pw, ok := os.LookupEnv(signKeyPasswordEnv)
	if !ok {
		pw = os.Getenv("COSIGN_PASSWORD")
	}
	key, err := sign.ParseKey(file, data, []byte(pw))
	if err != nil {
		return nil, &usageError{err}
	}
	return &promote.Signing{Signer: key, Identity: c.String("sign-identity"), Version: version(), Attest: c.Bool("attest-promotion")}, nil
}

// keylessOf reads --sign-oidc-token and the URLs it needs.
func keylessOf(c *cli.Context, tokenFile string) (*promote.Signing, error) {
	if c.String("fulcio-url") == "" {
		return nil, usagef("--sign-oidc-token needs --fulcio-url (the certificate authority to ask)")
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, usagef("read --sign-oidc-token: %v", err)
	}
	root, err := trustedRootOf(c)
	if err != nil {
		return nil, err
	}
	k, err := sign.NewKeyless(c.String("fulcio-url"), c.String("rekor-url"), string(tok), root)
	if err != nil {
		return nil, &usageError{err}
	}
	return &promote.Signing{Signer: k, Identity: c.String("sign-identity"), Version: version(), Attest: c.Bool("attest-promotion")}, nil
}

// trustedRootOf reads --trusted-root (nil when not given; exit 2 when
// it cannot be read).
func trustedRootOf(c *cli.Context) (root.TrustedMaterial, error) {
	file := c.String("trusted-root")
	if file == "" {
		return nil, nil
	}
	tr, err := sign.LoadTrustedRoot(file)
	if err != nil {
		return nil, &usageError{err}
	}
	return tr, nil
}
