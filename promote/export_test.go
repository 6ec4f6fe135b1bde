package promote

// SetStreamBounds lowers how many plan rows a plan and a spool hold, for a
// test of streamed plans; it returns the function that restores them.
func SetStreamBounds(rows int) (restore func()) {
	p, s := planRows, spoolRows
	planRows, spoolRows = rows, rows
	return func() { planRows, spoolRows = p, s }
}
