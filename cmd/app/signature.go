package app

import (
	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/sign"
)

var (
	signaturePolicyFlag = &cli.StringFlag{Name: "signature-policy", EnvVars: []string{"CIP_SIGNATURE_POLICY"},
		Usage: "check the signatures of every digest the plan would write against the rules in `FILE` (YAML); a digest that fails refuses the run (exit 2, nothing written)"}
	trustedRootFlag = &cli.StringFlag{Name: "trusted-root", EnvVars: []string{"CIP_TRUSTED_ROOT"},
		Usage: "sigstore trusted root (`FILE`, trusted_root.json) that keyless identities in the signature policy are checked against, offline"}
)

// signatureFlags are promote's flags about signatures.
func signatureFlags() []cli.Flag {
	return []cli.Flag{signaturePolicyFlag, trustedRootFlag}
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
