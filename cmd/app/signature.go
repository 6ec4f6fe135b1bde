package app

import (
	"os"

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
	trustedRootFlag = &cli.StringFlag{Name: "trusted-root", EnvVars: []string{"CIP_TRUSTED_ROOT"},
		Usage: "sigstore trusted root (`FILE`, trusted_root.json) that keyless identities in the signature policy are checked against, offline"}
)

// signatureFlags are promote's flags about signatures.
func signatureFlags() []cli.Flag {
	return []cli.Flag{signaturePolicyFlag, trustedRootFlag, signKeyFlag, signIdentityFlag}
}

// signaturePolicyOf reads --signature-policy (and --trusted-root): nil
// when none is given; a mistake in either file exits 2.
func signaturePolicyOf(c *cli.Context) (*sign.Policy, error) {
	file := c.String("signature-policy")
	if file == "" {
		if c.String("trusted-root") != "" {
			return nil, usagef("--trusted-root is only read with --signature-policy")
		}
		return nil, nil
	}
	var opts sign.PolicyOptions
	if tr := c.String("trusted-root"); tr != "" {
		root, err := sign.LoadTrustedRoot(tr)
		if err != nil {
			return nil, &usageError{err}
		}
		opts.TrustedRoot = root
	}
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
	file := c.String("sign-key")
	if file == "" {
		if c.String("sign-identity") != "" {
			return nil, usagef("--sign-identity is only used with --sign-key")
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
	return &promote.Signing{Key: key, Identity: c.String("sign-identity"), Version: version()}, nil
}
