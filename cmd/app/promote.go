package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/cipdev/cip/internal/table"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/registry"
)

// ExitPending is --exit-code's answer when the plan has work to do.
const ExitPending = 3

var (
	planOutputFlag = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, EnvVars: []string{"CIP_PLAN_OUTPUT"}, Value: "table",
		Usage: "plan output `FORMAT`: table, wide (a table with no cell cut), json or yaml"}
	confirmFlag = &cli.BoolFlag{Name: "confirm", EnvVars: []string{"CIP_CONFIRM"}, Usage: "really copy (the default is a dry run)"}
)

func promoteCommand() *cli.Command {
	return &cli.Command{
		Name:  "promote",
		Usage: "plan and (with --confirm) promote the images the manifests name",
		Description: `Syncs the repositories the manifests touch (source and destinations,
incrementally), loads the manifests into the inventory and prints the plan:
one row per (destination, image, digest) with its action (skip rows are
listed when the plan has at most 1000 of them, otherwise counted: one
"skip DESTINATION * (N digests not listed)" line each):
   skip  the digest is in the destination with every wanted tag
   tag   the digest is there; some wanted tags are missing (no blob traffic)
   copy  in the source, not in the destination
   lost  in neither: the run fails (exit 1) once the rest is done, listing
         them; --allow-lost makes them warnings
   refer a referrer (signature, attestation, SBOM) of the digest to copy
A wanted tag that a destination already has at another digest (a tag move)
refuses every write, dry run included: the whole plan is printed with the
moves marked, every move is named, and the run exits 2.

By default every destination repository is listed and every listed tag
HEADed (outside GCR's listing, which names each tag's digest). With
--confirm-ttl D, what cip confirmed live less than D ago is trusted: a
destination repository whose wanted images are unchanged since cip last
saw it complete (listed, or written and verified) is planned from the
inventory with no request, and crawls take tags cip confirmed within D
from the inventory without a HEAD; a change someone else made within D
goes unnoticed until then (cip verify, or --full, confirms everything).
--offline plans from the inventory alone, with no request (dry runs only). Credentials are
ambient (docker config, credential helpers, the Google keychain);
--use-service-account borrows the service accounts the manifests name, on
Google registries only (gcloud impersonation).

Nothing is written without --confirm. With it, each (destination repository,
digest) is copied once, server side and digest for digest (children before
an index, blobs mounted when the destination registry has them elsewhere),
tags after their digest; each finished copy is recorded in the inventory, so
an interrupted run can be rerun; at the end every reference written is
checked with a live HEAD.

Exit codes: 0 done (or nothing to do), 1 runtime failure, verification
mismatch or lost rows (without --allow-lost), 2 invalid manifests, a tag
move or a digest the signature policy refuses, 3 with --exit-code when the
plan has copy, tag or refer rows pending (and nothing is lost), 130
interrupted (Ctrl-C: the copies done so far are recorded; it says
"interrupted: N of M copies done", and a rerun finishes).

Referrers travel with their image (--referrers, default all): signatures,
attestations, SBOMs and any other manifest whose subject is a promoted
digest, one of its index children, or (a few levels deep) another such
referrer, found by the referrers API, the sha256-<hex> tag schema and
cosign's .sig/.att/.sbom tags. Each is a refer row (DIGEST is the
subject, TAGS the referrer and its artifact type), copied after its
subject: by digest where the destination indexes it (OCI-Subject), listed
in the destination's sha256-<hex> index otherwise; a cosign tag the
destination already has at another digest is merged (the destination
keeps its own signatures and gets the source's).

Signatures: --signature-policy FILE judges, during planning (dry runs too),
every digest the plan would write by the first rule matching its source
registry and image (require: unsigned is refused; if-present: unsigned
passes, a bad signature is refused), from cosign's .sig tags and sigstore
bundle referrers in the source, by public key or keyless identity
(--trusted-root); a refusal names each digest with its reason and exits 2
before any write, and the plan's SIGNATURE column says which rule each
passed. --sign-key cosign.key (password in CIP_SIGN_KEY_PASSWORD or
COSIGN_PASSWORD) signs each promoted digest once after the copy, in its
first destination, claiming --sign-identity, and copies the signature to
its other destinations; --attest-promotion adds a signed promotion record.

Examples:
   cip promote --manifest promoter-manifest.yaml --plan
   cip promote --manifest promoter-manifest.yaml --plan --referrers signatures
   cip promote --manifest promoter-manifest.yaml --plan --signature-policy signature-policy.yaml
   cip promote --manifest promoter-manifest.yaml --confirm --sign-key cosign.key --sign-identity 'registry.k8s.io/{image}'
   cip promote --thin-manifest-dir ./registry.k8s.io --plan --exit-code -o json
   cip sync gcr.io/k8s-staging-foo us.gcr.io/k8s-artifacts-prod && cip promote -m m.yaml --plan --offline
   cip promote --thin-manifest-dir ./registry.k8s.io --confirm --report run.json`,
		Flags: append([]cli.Flag{manifestFlag, thinDirFlag, skipInvalidFlag, planOutputFlag, confirmFlag, confirmTTLFlag, tagTTLFlag, fullFlag, referrersFlag,
			&cli.BoolFlag{Name: "plan", EnvVars: []string{"CIP_PLAN"}, Usage: "print the plan and exit (never writes)"},
			&cli.BoolFlag{Name: "offline", EnvVars: []string{"CIP_OFFLINE"}, Usage: "plan from the inventory as it stands (after a cip sync), with no registry request; dry runs only"},
			&cli.BoolFlag{Name: "exit-code", EnvVars: []string{"CIP_EXIT_CODE"}, Usage: "without --confirm, exit 3 when the plan has pending copy, tag or refer rows"},
			&cli.StringFlag{Name: "report", EnvVars: []string{"CIP_REPORT"}, Usage: "write a JSON run report to `FILE`"},
			&cli.BoolFlag{Name: "allow-lost", EnvVars: []string{"CIP_ALLOW_LOST"}, Usage: "only warn about lost rows (in neither source nor destination) instead of exiting 1"},
		}, append(signatureFlags(), registryFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.Bool("plan") && c.Bool("confirm") {
				return usagef("give --plan or --confirm, not both")
			}
			if c.Bool("offline") && c.Bool("confirm") {
				return usagef("--offline plans from a possibly stale inventory; it cannot be used with --confirm")
			}
			if c.NArg() > 0 {
				return usagef("promote takes no arguments (got %q)", c.Args().First())
			}
			set, err := loadManifests(c)
			if err != nil {
				return err
			}
			return promotion(c, set, promotionFlags{
				output: c.String("output"), confirm: c.Bool("confirm"),
				exitCode: c.Bool("exit-code"), report: c.String("report"), offline: c.Bool("offline"),
				allowLost: c.Bool("allow-lost"),
			})
		},
	}
}

type promotionFlags struct {
	output   string // table, wide, json, yaml
	confirm  bool
	exitCode bool
	report   string
	offline  bool
	// allowLost makes lost rows warnings (cip run, as the original
	// promoter; cip promote --allow-lost) instead of a failure.
	allowLost bool
}

// promotion is `cip promote` and `cip run --manifest/--thin-manifest-dir`:
// sync, plan, print, and with confirm copy, record and verify.
func promotion(c *cli.Context, set *manifest.Set, f promotionFlags) error {
	switch f.output {
	case "table", "wide", "json", "yaml":
	default:
		return usagef("unknown output format %q (want table, wide, json or yaml)", f.output)
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	prog := newProgress(c)
	client, keepQuotas := newInventoryClient(c, db, set, prog)
	defer keepQuotas()
	sel, err := referrersOf(c)
	if err != nil {
		return err
	}
	policy, err := signaturePolicyOf(c)
	if err != nil {
		return err
	}
	if policy != nil && f.offline {
		return usagef("--signature-policy reads signatures from the source registries; it cannot be used with --offline")
	}
	signing, err := signingOf(c)
	if err != nil {
		return err
	}
	opts := promote.Options{Jobs: c.Int("jobs"), Progress: prog.promote(), SyncProgress: prog.sync(), Offline: f.offline,
		ConfirmTTL: confirmTTL(c, prog), Full: c.Bool("full"), Referrers: sel, Signatures: policy, Signing: signing}
	origin := c.String("manifest")
	if origin == "" {
		origin = c.String("thin-manifest-dir")
	}
	plan, err := promote.MakePlan(c.Context, db, client, set, origin, opts)
	if plan != nil {
		prog.synced(plan.Syncs...)
		prog.referrersFound(plan.Referrers...)
	}
	var tm *promote.TagMoveError
	var refused *promote.SignatureError
	moved, unsigned := errors.As(err, &tm), errors.As(err, &refused)
	if err != nil && !moved && !unsigned {
		return err
	}
	var lostRows []inventory.PlanRow
	if lost := plan.Lost(); lost > 0 {
		if err := plan.Each(c.Context, db, func(r inventory.PlanRow) error {
			if r.Action == inventory.ActionLost {
				lostRows = append(lostRows, r)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if f.allowLost {
		for _, r := range lostRows {
			prog.warn("lost", fmt.Sprintf("lost: %s/%s@%s is in neither the source %s nor the destination (%s:%d)", r.Dst, r.Image, r.Digest, r.Src, r.File, r.Line),
				slog.String("destination", r.Dst), slog.String("image", r.Image), slog.String("digest", r.Digest), slog.String("source", r.Src),
				slog.String("file", r.File), slog.Int("line", r.Line))
		}
	}
	for _, s := range plan.Summaries() {
		trust := ""
		attrs := []slog.Attr{slog.String("destination", s.Destination), slog.Int("copy", s.Copy), slog.Int("tag", s.Tag), slog.Int("skip", s.Skip), slog.Int("lost", s.Lost), slog.Int("refer", s.Refer)}
		if s.Trusted > 0 {
			trust = fmt.Sprintf("; %d repositories trusted, not contacted (confirmed since %s)", s.Trusted, s.TrustedSince.UTC().Format(time.RFC3339))
			attrs = append(attrs, slog.Int("trusted", s.Trusted), slog.Time("trusted_since", s.TrustedSince.UTC()))
		}
		prog.info("plan", fmt.Sprintf("plan %s: %d copy, %d tag, %d skip, %d lost, %d refer%s", s.Destination, s.Copy, s.Tag, s.Skip, s.Lost, s.Refer, trust), attrs...)
	}
	if err := writePlan(c.Context, c.App.Writer, f.output, plan, db, tableWidth(c, f.output == "wide")); err != nil {
		return err
	}
	if moved || unsigned {
		// The whole plan is out, its moves and refusals marked; nothing is
		// written.
		return &usageError{err}
	}
	// Lost rows fail the run once the rest is done: a release must not go
	// green without its image.
	var lost error
	if len(lostRows) > 0 && !f.allowLost {
		lost = &promote.LostError{Rows: lostRows}
	}
	if !f.confirm {
		if f.report != "" {
			if err := writeReport(f.report, runReport{DryRun: true, Plan: plan.Summaries(), Trusted: plan.Trusted, Hosts: client.Transport().Stats().Hosts}); err != nil {
				return err
			}
		}
		if plan.Pending() > 0 {
			prog.info("dry run", fmt.Sprintf("dry run: %d rows pending; nothing written (add --confirm to promote)", plan.Pending()),
				slog.Int("pending", plan.Pending()))
		}
		if lost != nil {
			return lost
		}
		if f.exitCode && plan.Pending() > 0 {
			return cli.Exit("", ExitPending)
		}
		return nil
	}
	opts.OnImage = prog.image
	rep, perr := promote.Promote(c.Context, db, client, plan, opts)
	state(c).report = rep
	if f.report != "" && rep != nil {
		if err := writeReport(f.report, runReport{Plan: plan.Summaries(), Trusted: plan.Trusted, Hosts: client.Transport().Stats().Hosts, Report: rep}); err != nil {
			perr = errors.Join(perr, err)
		}
	}
	if rep != nil && rep.Interrupted {
		// No summary that reads like a finished run: how far it got.
		return &interrupted{msg: fmt.Sprintf("interrupted: %d of %d copies done; rerun to finish", rep.RowsDone, rep.Rows), err: perr}
	}
	prog.promoted(rep)
	if signing != nil && rep != nil {
		var made, had, copied int
		for _, s := range rep.Signatures {
			switch {
			case s.Error != "":
			case s.Signed:
				made++
			default:
				had++
			}
			copied += s.CopiedTo
		}
		prog.info("signed", fmt.Sprintf("signed: %d digest(s), %d already signed by this key; signatures copied to %d other destination(s)", made, had, copied),
			slog.Int("signed", made), slog.Int("already_signed", had), slog.Int("copied", copied))
	}
	return errors.Join(perr, lost)
}

// runReport is the --report file.
type runReport struct {
	DryRun bool              `json:"dry_run"`
	Plan   []promote.Summary `json:"plan"`
	// Trusted names the destination repositories planned from the
	// inventory with no request (--confirm-ttl), and when cip last
	// confirmed each.
	Trusted []inventory.TrustedTarget `json:"trusted"`
	// Hosts counts every request of the run per registry host, by method
	// and kind (pings and token requests included), with each host's
	// adaptive pace.
	Hosts []registry.HostStats `json:"hosts"`
	*promote.Report
}

func writeReport(path string, r runReport) error {
	if r.Plan == nil {
		r.Plan = []promote.Summary{} // [] in JSON, never null
	}
	if r.Trusted == nil {
		r.Trusted = []inventory.TrustedTarget{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// planRow is a plan row as printed (json and yaml).
type planRow struct {
	Destination string   `json:"destination" yaml:"destination"`
	Image       string   `json:"image" yaml:"image"`
	Digest      string   `json:"digest" yaml:"digest"`
	Action      string   `json:"action" yaml:"action"`
	Source      string   `json:"source" yaml:"source"`
	Tags        []string `json:"tags" yaml:"tags,flow"`
	TagsMissing []string `json:"tags_missing" yaml:"tags_missing,flow"`
	// Refer rows: the referrer to copy for Subject (the wanted Digest, a
	// child of it, or another referrer), and how the source holds it.
	Subject      string `json:"subject,omitempty" yaml:"subject,omitempty"`
	Referrer     string `json:"referrer,omitempty" yaml:"referrer,omitempty"`
	ArtifactType string `json:"artifact_type,omitempty" yaml:"artifact_type,omitempty"`
	FoundBy      string `json:"found_by,omitempty" yaml:"found_by,omitempty"`
	// Signature is how the --signature-policy judged the digest (copy and
	// tag rows a rule matches): the rule and who signed, or the refusal.
	Signature string `json:"signature,omitempty" yaml:"signature,omitempty"`
	File      string `json:"file" yaml:"file"`
	Line      int    `json:"line" yaml:"line"`
	// TagMoves are the wanted tags the destination has at another digest:
	// refused (cip never moves a tag), and the reason nothing is written.
	TagMoves []planMove `json:"tag_moves,omitempty" yaml:"tag_moves,omitempty"`
}

// planMove is one refused tag move of a plan row.
type planMove struct {
	Tag       string `json:"tag" yaml:"tag"`
	DigestNow string `json:"digest_now" yaml:"digest_now"`
}

// writePlan prints the plan's rows: copy, tag and lost rows, and skip rows
// when the plan lists them (promote.MaxSkipRows), each with the tag moves
// it would need (refused). The table (fitted to width) ends with one line
// per destination whose skip rows are counted but not listed; json and
// yaml carry the listed rows only (--report has every count). Rows are
// written as they are read (a streamed plan is read from db), never all
// held: the table is measured in a first pass.
func writePlan(ctx context.Context, w io.Writer, format string, plan *promote.Plan, db *inventory.DB, width int) error {
	type rowKey struct{ dst, image, digest string }
	moves := map[rowKey][]planMove{}
	for _, m := range plan.TagMoves {
		k := rowKey{m.Dst, m.Image, m.DigestWanted}
		moves[k] = append(moves[k], planMove{Tag: m.Tag, DigestNow: m.DigestNow})
	}
	checks := map[[3]string]string{}
	for _, s := range plan.Signatures {
		checks[[3]string{s.Source, s.Image, s.Digest}] = s.Summary()
	}
	toRow := func(r inventory.PlanRow) planRow {
		// Lists are [] in JSON, never null.
		return planRow{Destination: r.Dst, Image: r.Image, Digest: r.Digest, Action: r.Action, Source: r.Src,
			Tags: append([]string{}, r.Tags...), TagsMissing: append([]string{}, r.Missing...), File: r.File, Line: r.Line,
			TagMoves: moves[rowKey{r.Dst, r.Image, r.Digest}], Signature: checks[[3]string{r.Src, r.Image, r.Digest}]}
	}
	referRow := func(r inventory.ReferRow) planRow {
		return planRow{Destination: r.Dst, Image: r.Image, Digest: r.Digest, Action: inventory.ActionRefer,
			Source: strings.TrimSuffix(r.SrcRepo, "/"+r.Image), Tags: []string{}, TagsMissing: []string{}, Subject: r.Subject, Referrer: r.Referrer,
			ArtifactType: r.ArtifactType, FoundBy: r.FoundBy, File: r.File, Line: r.Line}
	}
	switch format {
	case "json", "yaml":
		// The plan's rows, then the referrers to copy.
		return writeRows(w, format, func(emit func(planRow) error) error {
			if err := plan.Each(ctx, db, func(r inventory.PlanRow) error { return emit(toRow(r)) }); err != nil {
				return err
			}
			for _, r := range plan.Refers {
				if err := emit(referRow(r)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	cols := table.Columns("ACTION", "DESTINATION", "IMAGE", "DIGEST", "TAGS")
	signed := plan.Signatures != nil
	if signed {
		cols = table.Columns("ACTION", "DESTINATION", "IMAGE", "DIGEST", "TAGS", "SIGNATURE")
	}
	cells := func(r inventory.PlanRow) []string {
		tags := strings.Join(r.Tags, ",")
		if r.Action == inventory.ActionTag {
			tags = "+" + strings.Join(r.Missing, ",+")
			if len(r.Missing) < len(r.Tags) {
				tags += " (of " + strings.Join(r.Tags, ",") + ")"
			}
		}
		if tags == "" {
			tags = "-"
		}
		sig := checks[[3]string{r.Src, r.Image, r.Digest}]
		if sig == "" {
			sig = "-"
		}
		for _, m := range moves[rowKey{r.Dst, r.Image, r.Digest}] {
			tags += " MOVE REFUSED: " + m.Tag + " is at " + m.DigestNow
		}
		return withSignature(signed, []string{r.Action, r.Dst, r.Image, r.Digest, tags}, sig)
	}
	referCells := func(r inventory.ReferRow) []string {
		return withSignature(signed, []string{inventory.ActionRefer, r.Dst, r.Image, r.Subject, r.Referrer + " (" + r.ArtifactType + ")"}, "-")
	}
	listed := map[string]int{}
	widths := table.NewWidths(cols)
	if err := plan.Each(ctx, db, func(r inventory.PlanRow) error {
		if r.Action == inventory.ActionSkip {
			listed[r.Dst]++
		}
		widths.Add(cells(r))
		return nil
	}); err != nil {
		return err
	}
	for _, r := range plan.Refers {
		widths.Add(referCells(r))
	}
	var unlisted [][]string
	for _, s := range plan.Summaries() {
		if n := s.Skip - listed[s.Destination]; n > 0 {
			row := withSignature(signed, []string{inventory.ActionSkip, s.Destination, "*", fmt.Sprintf("(%d digests not listed)", n), "-"}, "-")
			widths.Add(row)
			unlisted = append(unlisted, row)
		}
	}
	st, err := table.NewStream(w, cols, widths, width)
	if err != nil {
		return err
	}
	if err := plan.Each(ctx, db, func(r inventory.PlanRow) error { return st.Row(cells(r)) }); err != nil {
		return err
	}
	for _, r := range plan.Refers {
		if err := st.Row(referCells(r)); err != nil {
			return err
		}
	}
	for _, row := range unlisted {
		if err := st.Row(row); err != nil {
			return err
		}
	}
	return nil
}

// writeRows prints the rows each gives as an indented JSON array or a YAML
// sequence, one row at a time: the bytes writeData prints for the slice.
func writeRows[T any](w io.Writer, format string, each func(emit func(T) error) error) error {
	n := 0
	err := each(func(v T) error {
		var b []byte
		var err error
		if format == "json" {
			b, err = json.MarshalIndent(v, "  ", "  ")
			prefix := ",\n  "
			if n == 0 {
				prefix = "[\n  "
			}
			b = append([]byte(prefix), b...)
		} else {
			var buf bytes.Buffer
			err = writeData(&buf, "yaml", []T{v})
			b = buf.Bytes()
		}
		if err != nil {
			return err
		}
		n++
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case n == 0:
		_, err = io.WriteString(w, "[]\n")
	case format == "json":
		_, err = io.WriteString(w, "\n]\n")
	}
	return err
}

// withSignature adds the SIGNATURE cell to a plan table row when the
// plan was checked against a signature policy.
func withSignature(signed bool, row []string, sig string) []string {
	if signed {
		return append(row, sig)
	}
	return row
}

// writeData prints v as indented JSON or YAML.
func writeData(w io.Writer, format string, v any) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}
