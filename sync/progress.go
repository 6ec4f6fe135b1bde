package sync

import (
	"fmt"
	"io"

	"github.com/cipdev/cip/internal/liveline"
)

// newProgress redraws one status line on a terminal while a sync runs.
func newProgress(w io.Writer, live bool, s *syncer) *liveline.Line {
	return liveline.Start(w, live, func() string {
		all, done := s.reposAll.Load(), s.reposDone.Load()
		return fmt.Sprintf("sync %s %d/%d repositories, %d tags, %d manifests fetched",
			liveline.Bar(done, all, 30), done, all, s.tagsSeen.Load(), s.gets.Load())
	})
}
