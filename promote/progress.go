package promote

import (
	"fmt"
	"io"

	"github.com/cipdev/cip/internal/human"
	"github.com/cipdev/cip/internal/liveline"
)

// newProgress redraws one status line on a terminal while copies run:
// rows done of rows to do over every destination, and bytes sent.
func newProgress(w io.Writer, live bool, names []string, dests map[string]*destStats) *liveline.Line {
	return liveline.Start(w, live, func() string {
		var all, done, sent int64
		for _, n := range names {
			st := dests[n]
			all += st.rowsAll.Load()
			done += st.rowsDone.Load()
			sent += st.bytesSent.Load()
		}
		return fmt.Sprintf("promote %s %d/%d images to %d destinations, %s sent",
			liveline.Bar(done, all, 30), done, all, len(names), human.Bytes(sent))
	})
}
