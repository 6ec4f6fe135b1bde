package query

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cipdev/cip/internal/human"
	"github.com/cipdev/cip/inventory"
)

// Ask translates a question and answers it from the inventory at path
// and/or the loaded manifests; the answer is streamed (close it). Its
// Reading says how the question was read; a question that cannot be answered with what is known (a
// registry never synced, no manifests for a question about them) is an
// ErrInvalid error, never an empty answer.
func Ask(ctx context.Context, path, question string, opts Options) (*Result, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	plan, err := Translate(question, now())
	if err != nil {
		return nil, err
	}
	s, notes, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	res, err := ask(ctx, s, plan, opts, notes)
	if err != nil {
		s.close()
		return nil, err
	}
	return res, nil
}

// ask answers plan on s; the answer streams from s (closing it closes s).
func ask(ctx context.Context, s *session, plan *Plan, opts Options, notes []string) (*Result, error) {
	a := &asker{s: s, plan: plan, opts: opts, notes: notes}
	srcs, err := a.prepare(ctx)
	if err != nil {
		return nil, err
	}
	f := plan.Form
	stmt := f.statement(plan, srcs...)
	args, err := plan.args(stmt)
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, stmt, args)
	if err != nil {
		return nil, err
	}
	humanSizes(res)
	res.Form = f.Name
	res.Reading = plan.Reading()
	res.Notes = append(append(a.notes, f.notes...), res.Notes...)
	return res, nil
}

// asker answers one plan on one session.
type asker struct {
	s     *session
	plan  *Plan
	opts  Options
	notes []string
}

// regs are the registry slots a plan binds, in order.
func (a *asker) regs() []string {
	var out []string
	for _, k := range []string{"REG", "REG2"} {
		if _, ok := a.plan.Slots[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// prepare resolves bare names, loads the manifests' promotions a form
// needs, checks that what the question is about is known, and picks the
// source of each registry.
func (a *asker) prepare(ctx context.Context) ([]Source, error) {
	p, f := a.plan, a.plan.Form
	for _, k := range a.regs() {
		if p.Bare[k] {
			if err := a.resolve(ctx, k, false); err != nil {
				return nil, err
			}
		}
	}
	if p.Bare["IMAGE"] && !f.suffix {
		if err := a.resolve(ctx, "IMAGE", true); err != nil {
			return nil, err
		}
	}
	needsManifests := f.scope == scopePromoted || f.scope == scopePromotedFrom || f.scope == scopeManifests
	if needsManifests && a.opts.Manifests == nil {
		return nil, fmt.Errorf("%w: %q needs the manifests: give --manifest or --thin-manifest-dir", ErrInvalid, f.Patterns[0])
	}
	if a.opts.Manifests != nil && (needsManifests || f.scope == scopeInREG || f.scope == scopeTwo) {
		var prefixes []string
		for _, k := range a.regs() {
			prefixes = append(prefixes, p.Slots[k])
		}
		if _, err := a.s.loadPromotions(ctx, a.opts.Manifests, func(repo string) bool {
			return slices.ContainsFunc(prefixes, func(reg string) bool { return inventory.Under(repo, reg) })
		}); err != nil {
			return nil, err
		}
	}
	switch f.scope {
	case scopeInREG, scopeTwo:
		var srcs []Source
		for _, k := range a.regs() {
			src, err := a.source(ctx, p.Slots[k])
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, src)
		}
		return srcs, nil
	case scopeInventory:
		for _, k := range a.regs() {
			if err := a.mustKnow(ctx, p.Slots[k]); err != nil {
				return nil, err
			}
		}
		img, _ := p.Params["image"].(string)
		if img != "" && !f.suffix {
			if err := a.mustKnowRepository(ctx, img); err != nil {
				return nil, err
			}
		}
		if f.needTarget && (img != "" || !f.targetRef) {
			if err := a.mustFindTarget(ctx); err != nil {
				return nil, err
			}
		}
		if len(a.regs()) == 0 && (img == "" || f.suffix) {
			n, err := a.count(ctx, `SELECT COUNT(*) FROM repositories`)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, fmt.Errorf("%w: the inventory %s holds no repository: run cip sync first", ErrInvalid, a.inventory())
			}
			a.notes = append(a.notes, fmt.Sprintf("answered from the inventory (%s, every synced registry)", plural(int64(n), "repository", "repositories")))
		}
		return []Source{FromInventory}, nil
	case scopeAny:
		a.notes = append(a.notes, "answered from the inventory")
		return []Source{FromInventory}, nil
	case scopePromoted, scopePromotedFrom:
		reg := p.Slots["REG"]
		into, err := a.count(ctx, `SELECT COUNT(*) FROM promotions WHERE tag = '' AND `+under("repository", "reg"), sql.Named("reg", reg))
		if err != nil {
			return nil, err
		}
		from, err := a.count(ctx, `SELECT COUNT(*) FROM promotions WHERE tag = '' AND `+under("src || '/' || image", "reg"), sql.Named("reg", reg))
		if err != nil {
			return nil, err
		}
		if f.scope == scopePromoted {
			if into == 0 && from > 0 {
				return nil, fmt.Errorf("%w: no loaded manifest promotes into %s; it is the source of %d promotions: ask \"what in %s is not yet promoted\"", ErrInvalid, reg, from, reg)
			}
			a.notes = append(a.notes, fmt.Sprintf("answered from the manifests (%d promotions into %s), checked against the inventory", into, reg))
		} else {
			if from == 0 && into > 0 {
				return nil, fmt.Errorf("%w: no loaded manifest promotes out of %s; it is the destination of %d promotions: ask \"what is not yet promoted to %s\"", ErrInvalid, reg, into, reg)
			}
			a.notes = append(a.notes, fmt.Sprintf("answered from the manifests (%d promotions out of %s), checked against the inventory", from, reg))
		}
		return []Source{FromManifests}, nil
	case scopeManifests:
		reg := p.Slots["REG"]
		n, _, _, err := a.known(ctx, reg)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: %s has not been synced: run cip sync %s first", ErrInvalid, reg, reg)
		}
		named, err := a.count(ctx, `SELECT COUNT(*) FROM promotions WHERE tag = '' AND (`+under("repository", "reg")+` OR `+under("src || '/' || image", "reg")+`)`, sql.Named("reg", reg))
		if err != nil {
			return nil, err
		}
		a.notes = append(a.notes, fmt.Sprintf("answered from the inventory (%s under %s), checked against the manifests (%s name it, as source or destination)", plural(int64(n), "synced repository", "synced repositories"), reg, plural(int64(named), "promotion", "promotions")))
		return []Source{FromInventory}, nil
	}
	return nil, fmt.Errorf("form %s: unknown scope %d", f.Name, f.scope)
}

// row runs one of the fixed statements below (read-only, values bound
// as parameters, like the forms') and returns its one row.
func (a *asker) row(ctx context.Context, stmt string, args ...any) ([]any, error) {
	rows, err := a.s.r.Query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("read inventory %s: %w", a.inventory(), err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read inventory %s: %w", a.inventory(), err)
		}
		return nil, fmt.Errorf("read inventory %s: no row", a.inventory())
	}
	return rows.Row(), nil
}

func (a *asker) count(ctx context.Context, stmt string, args ...any) (int, error) {
	r, err := a.row(ctx, stmt, args...)
	if err != nil {
		return 0, err
	}
	n, ok := r[0].(int64)
	if !ok {
		return 0, fmt.Errorf("read inventory %s: a count of %T", a.inventory(), r[0])
	}
	return int(n), nil
}

func (a *asker) inventory() string {
	if p := a.s.r.Path(); p != "" {
		return p
	}
	return "(empty)"
}

// known counts the synced repositories at or below reg, and the complete
// sync runs that covered reg (so that a registry synced and found empty
// is known to be empty).
func (a *asker) known(ctx context.Context, reg string) (repos, runs int, last string, err error) {
	if repos, err = a.s.r.CountSynced(ctx, reg); err != nil {
		return 0, 0, "", err
	}
	r, err := a.row(ctx, coveredSQL, sql.Named("reg", reg))
	if err != nil {
		return 0, 0, "", fmt.Errorf("look up the sync runs of %s: %w", reg, err)
	}
	n, _ := r[0].(int64)
	last, _ = r[1].(string)
	return repos, int(n), last, nil
}

func (a *asker) knownNote(reg string, repos, runs int, last string) string {
	if repos == 0 {
		return fmt.Sprintf("%s: answered from the inventory (no repository: a complete sync of it at %s found none)", reg, last)
	}
	return fmt.Sprintf("%s: answered from the inventory (%s)", reg, plural(int64(repos), "synced repository", "synced repositories"))
}

// source picks where "in REG" answers come from: the inventory when REG
// is known, else the manifests when they name it.
func (a *asker) source(ctx context.Context, reg string) (Source, error) {
	repos, runs, last, err := a.known(ctx, reg)
	if err != nil {
		return "", err
	}
	if repos > 0 || runs > 0 {
		a.notes = append(a.notes, a.knownNote(reg, repos, runs, last))
		return FromInventory, nil
	}
	if a.opts.Manifests == nil {
		return "", fmt.Errorf("%w: nothing is known about %s: it has not been synced (run cip sync %s) and no manifests were given (--manifest, --thin-manifest-dir)", ErrInvalid, reg, reg)
	}
	n, err := a.count(ctx, `SELECT COUNT(*) FROM promotions WHERE tag = '' AND (`+under("repository", "reg")+` OR `+under("src || '/' || image", "reg")+`)`, sql.Named("reg", reg))
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", fmt.Errorf("%w: nothing is known about %s: it has not been synced (run cip sync %s) and no loaded manifest promotes into or out of it", ErrInvalid, reg, reg)
	}
	a.notes = append(a.notes, fmt.Sprintf("%s: answered from the manifests (not synced; %d promotions into or out of it)", reg, n))
	return FromManifests, nil
}

func (a *asker) mustKnow(ctx context.Context, reg string) error {
	repos, runs, last, err := a.known(ctx, reg)
	if err != nil {
		return err
	}
	if repos == 0 && runs == 0 {
		return fmt.Errorf("%w: %s has not been synced: nothing is known about it (run cip sync %s)", ErrInvalid, reg, reg)
	}
	a.notes = append(a.notes, a.knownNote(reg, repos, runs, last))
	return nil
}

func (a *asker) mustKnowRepository(ctx context.Context, repo string) error {
	n, err := a.count(ctx, `SELECT COUNT(*) FROM repositories WHERE name = :image AND synced_at IS NOT NULL`, sql.Named("image", repo))
	if err != nil {
		return err
	}
	if n == 0 {
		if _, runs, _, err := a.known(ctx, repo); err != nil || runs == 0 {
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: %s has not been synced: nothing is known about it (run cip sync %s)", ErrInvalid, repo, repo)
		}
	}
	a.notes = append(a.notes, fmt.Sprintf("%s: answered from the inventory", repo))
	return nil
}

// mustFindTarget checks that the plan's TARGET names a tag or digest the
// inventory has.
func (a *asker) mustFindTarget(ctx context.Context) error {
	p := a.plan
	var args []any
	for _, k := range []string{"image", "tag", "digest"} {
		v, ok := p.Params[k]
		if !ok {
			v = ""
		}
		args = append(args, sql.Named(k, v))
	}
	n, err := a.count(ctx, `WITH `+target+` SELECT COUNT(*) FROM target`, args...)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	switch {
	case p.Params["tag"] != nil && p.Params["tag"] != "":
		return fmt.Errorf("%w: %s has no tag %s (as of its last sync)", ErrInvalid, p.Params["image"], p.Params["tag"])
	case p.Params["image"] != nil && p.Params["image"] != "":
		return fmt.Errorf("%w: %s holds no digest %s (as of its last sync)", ErrInvalid, p.Params["image"], p.Params["digest"])
	}
	return fmt.Errorf("%w: the inventory holds no manifest with digest %s", ErrInvalid, p.Params["digest"])
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// maxCandidates bounds how many names resolve reads, and how many an
// ambiguity error lists.
const (
	maxCandidates = 100000
	maxListed     = 5
)

// resolve turns a bare name in slot k ("prod", "prod/app") into the one
// registry path (repo: repository) the inventory or the manifests know
// that ends in it, by whole path segments.
func (a *asker) resolve(ctx context.Context, k string, repo bool) error {
	p := a.plan
	name := p.Slots[k]
	var names []string
	rows, err := a.s.r.Query(ctx, `SELECT name FROM repositories WHERE instr(name || '/', '/' || :name || '/') > 0 ORDER BY name LIMIT :max`,
		sql.Named("name", name), sql.Named("max", maxCandidates))
	if err != nil {
		return fmt.Errorf("resolve %s: %w", name, err)
	}
	for rows.Next() {
		if n, ok := rows.Row()[0].(string); ok {
			names = append(names, n)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("resolve %s: %w", name, err)
	}
	if a.opts.Manifests != nil {
		for _, pr := range a.opts.Manifests.Promotions() {
			names = append(names, pr.Dst+"/"+pr.Image, pr.Src+"/"+pr.Image)
		}
	}
	want := strings.Split(name, "/")
	cands := map[string]bool{}
	for _, n := range names {
		segs := strings.Split(n, "/")
		for i := len(want); i < len(segs); i++ { // segs[0] is the host
			if slices.Equal(segs[i-len(want)+1:i+1], want) {
				if !repo || i == len(segs)-1 {
					cands[strings.Join(segs[:i+1], "/")] = true
				}
			}
		}
	}
	list := make([]string, 0, len(cands))
	for c := range cands {
		list = append(list, c)
	}
	sort.Strings(list)
	what, whats := "registry path", "registry paths"
	if repo {
		what, whats = "repository", "repositories"
	}
	switch len(list) {
	case 0:
		return fmt.Errorf("%w: %q is no registry reference, and no %s the inventory or the manifests know ends in /%s: give the full reference (host/path)", ErrInvalid, name, what, name)
	case 1:
	default:
		shown := list
		if len(shown) > maxListed {
			shown = shown[:maxListed]
		}
		return fmt.Errorf("%w: %q could be any of %d known %s: %s: give the full reference (host/path)", ErrInvalid, name, len(list), whats, strings.Join(shown, ", "))
	}
	full := list[0]
	a.notes = append(a.notes, fmt.Sprintf("read %q as %s (the only known %s ending in /%s)", name, full, what, name))
	p.Slots[k] = full
	param := strings.ToLower(k)
	p.Params[param] = full
	if k == "IMAGE" {
		switch {
		case p.Slots["TAG"] != "" && p.Slots["TARGET"] != "":
			p.Slots["TARGET"] = full + ":" + p.Slots["TAG"]
		case p.Slots["TARGET"] != "":
			p.Slots["TARGET"] = full + "@" + fmt.Sprint(p.Params["digest"])
		}
	}
	delete(p.Bare, k)
	return nil
}

// humanSizes adds, before each bytes column, a size column in binary
// units (internal/human), so that both the exact count and a readable one
// are there: to the columns now, to each row as it is read.
func humanSizes(res *Result) {
	i := slices.Index(res.Columns, "bytes")
	if i < 0 {
		return
	}
	res.Columns = slices.Insert(slices.Clone(res.Columns), i, "size")
	add := func(row []any) []any {
		var h string
		switch n := row[i].(type) {
		case int64:
			h = human.Bytes(n)
		case nil:
			h = ""
		default:
			h = fmt.Sprint(n)
		}
		return slices.Insert(row, i, any(h))
	}
	if res.stream != nil {
		prev := res.stream.row
		res.stream.row = func(row []any) []any { return add(prev(row)) }
		return
	}
	for r, row := range res.Rows {
		res.Rows[r] = add(row)
	}
}
