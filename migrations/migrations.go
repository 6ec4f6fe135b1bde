// Package migrations holds the inventory's schema as numbered SQL files,
// applied in order by inventory.Open, each in its own transaction and
// recorded in schema_migrations so that it never runs twice.
package migrations

import "embed"

// FS holds the migration files, named NNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
