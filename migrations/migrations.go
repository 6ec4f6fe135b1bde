// Package migrations holds the inventory's schema as numbered SQL files,
// applied in order by inventory.Open, each in its own transaction and
// recorded in schema_migrations so that it never runs twice; and, beside
// the views it must agree with, the planning statement that inventory runs
// instead of reading them (PlanPending).
package migrations

import "embed"

// FS holds the migration files, named NNNN_description.sql.
//
//go:embed [0-9][0-9][0-9][0-9]_*.sql
var FS embed.FS

// PlanPending is the statement inventory.Plan runs for the plan's pending
// rows and tag moves of one load (parameter ?1), by set difference; it must
// give the rows of the plan and plan_tag_moves views (0003, 0004) that are
// not skip. The file's head comment explains it.
//
//go:embed plan_pending.sql
var PlanPending string

// PlanReferrers is the statement inventory.Plan runs for the plan's refer
// rows of one load (parameter ?1) up to a depth of referrers of referrers
// (?2). The file's head comment explains it.
//
//go:embed plan_referrers.sql
var PlanReferrers string
