// Package batch gathers work queued on a channel into batches, for the one
// goroutine that writes them to the inventory in one transaction each
// (promote's copy records, sync's finished crawls).
package batch

import "time"

// Next returns first and whatever else arrives on ch, up to max items in
// all: what is queued already, and, when linger > 0, what arrives within
// linger of the call. It stops early when ch is closed.
func Next[T any](ch <-chan T, first T, max int, linger time.Duration) []T {
	out := []T{first}
	var expire <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		expire = t.C
	}
	for len(out) < max {
		if expire == nil {
			select {
			case x, ok := <-ch:
				if !ok {
					return out
				}
				out = append(out, x)
			default:
				return out
			}
			continue
		}
		select {
		case x, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, x)
		case <-expire:
			return out
		}
	}
	return out
}
