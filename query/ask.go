package query

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"

	"github.com/cipdev/cip/inventory"
)

// defaultLimit is how many rows "largest images" shows without N: a
// screenful.
const defaultLimit = 20

// Ask translates a question and answers it from the inventory at path
// and/or the loaded manifests.
func Ask(ctx context.Context, path, question string, opts Options) (*Result, error) {
	plan, err := Translate(question)
	if err != nil {
		return nil, err
	}
	s, notes, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	f := plan.Form
	var srcs []Source
	switch f.scope {
	case scopeInREG, scopeCompare:
		for _, k := range []string{"REG", "REG2"} {
			reg, ok := plan.Slots[k]
			if !ok {
				continue
			}
			src, note, err := s.sourceFor(ctx, reg, opts)
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, src)
			notes = append(notes, note)
		}
	case scopeInventory:
		srcs = []Source{FromInventory}
		if reg, ok := plan.Slots["REG"]; ok {
			n, err := s.synced(ctx, reg)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				notes = append(notes, fmt.Sprintf("%s has not been synced: nothing is known about it (run cip sync %s)", reg, reg))
			} else {
				notes = append(notes, fmt.Sprintf("answered from the inventory (%d synced repositories under %s)", n, reg))
			}
		} else {
			notes = append(notes, "answered from the inventory")
		}
	case scopePromoted:
		reg := plan.Slots["REG"]
		if opts.Manifests == nil {
			return nil, fmt.Errorf("%w: %q needs the manifests: give --manifest or --thin-manifest-dir", ErrInvalid, f.Templates[0])
		}
		n, err := s.loadPromotions(ctx, opts.Manifests, func(repo string) bool { return inventory.Under(repo, reg) })
		if err != nil {
			return nil, err
		}
		srcs = []Source{FromManifests}
		notes = append(notes, fmt.Sprintf("answered from the manifests (%d promotions into %s), checked against the inventory", n, reg))
	case scopeUnmanaged:
		reg := plan.Slots["REG"]
		if opts.Manifests == nil {
			return nil, fmt.Errorf("%w: %q needs the manifests: give --manifest or --thin-manifest-dir", ErrInvalid, f.Templates[0])
		}
		n, err := s.synced(ctx, reg)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: %s has not been synced: run cip sync %s first", ErrInvalid, reg, reg)
		}
		if _, err := s.loadPromotions(ctx, opts.Manifests, func(repo string) bool { return inventory.Under(repo, reg) }); err != nil {
			return nil, err
		}
		srcs = []Source{FromInventory}
		notes = append(notes, fmt.Sprintf("answered from the inventory (%d synced repositories under %s), checked against the manifests", n, reg))
	}
	stmt := f.SQL(srcs...)
	res, err := s.run(ctx, stmt, plan.args(stmt))
	if err != nil {
		return nil, err
	}
	res.Form = f.Name
	res.Notes = append(notes, res.Notes...)
	return res, nil
}

// synced counts the repositories at or below reg that a sync completed.
func (s *session) synced(ctx context.Context, reg string) (int, error) {
	return s.r.CountSynced(ctx, reg)
}

// sourceFor picks where "in REG" answers come from: the inventory when
// REG has been synced, else the manifests (loading REG's promotions).
func (s *session) sourceFor(ctx context.Context, reg string, opts Options) (Source, string, error) {
	n, err := s.synced(ctx, reg)
	if err != nil {
		return "", "", err
	}
	if n > 0 {
		return FromInventory, fmt.Sprintf("%s: answered from the inventory (%d synced repositories)", reg, n), nil
	}
	if opts.Manifests == nil {
		return FromInventory, fmt.Sprintf("%s has not been synced and no manifests were given: nothing is known about it (run cip sync %s, or give --manifest / --thin-manifest-dir)", reg, reg), nil
	}
	p, err := s.loadPromotions(ctx, opts.Manifests, func(repo string) bool { return inventory.Under(repo, reg) })
	if err != nil {
		return "", "", err
	}
	return FromManifests, fmt.Sprintf("%s: answered from the manifests (not synced; %d promotions into it)", reg, p), nil
}

var paramRE = regexp.MustCompile(`:(reg2|reg|pattern|digest|since|image|tag|limit)\b`)

// args binds the parameters stmt uses from the plan's slots.
func (p *Plan) args(stmt string) []sql.NamedArg {
	seen := map[string]bool{}
	var out []sql.NamedArg
	for _, m := range paramRE.FindAllStringSubmatch(stmt, -1) {
		name := m[1]
		if seen[name] {
			continue
		}
		seen[name] = true
		var v any
		switch name {
		case "reg":
			v = p.Slots["REG"]
		case "reg2":
			v = p.Slots["REG2"]
		case "pattern":
			pat, ok := p.Slots["PATTERN"]
			if !ok {
				pat = "*"
			}
			v = pat
		case "digest":
			v = p.Slots["DIGEST"]
		case "since":
			v = p.Slots["DATE"]
		case "image":
			v = p.Slots["IMAGE"]
		case "tag":
			v = p.Slots["TAG"]
		case "limit":
			v = limitValue(p.Slots["N"], defaultLimit)
		}
		out = append(out, sql.Named(name, v))
	}
	return out
}
