package batch

import (
	"testing"
	"time"
)

func TestNextTakesWhatIsQueued(t *testing.T) {
	ch := make(chan int, 10)
	for i := 2; i <= 6; i++ {
		ch <- i
	}
	if got := Next(ch, 1, 4, 0); len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Errorf("Next(max 4) = %v, want [1 2 3 4]", got)
	}
	if got := Next(ch, 0, 10, 0); len(got) != 3 {
		t.Errorf("Next without linger = %v, want the 2 queued after the first", got)
	}
	close(ch)
	if got := Next(ch, 7, 10, time.Hour); len(got) != 1 {
		t.Errorf("Next on a closed channel = %v, want only the first (and no wait)", got)
	}
}

func TestNextLingers(t *testing.T) {
	ch := make(chan int)
	go func() {
		ch <- 2
		close(ch)
	}()
	if got := Next(ch, 1, 10, time.Minute); len(got) != 2 {
		t.Errorf("Next with linger = %v, want the item sent after the call", got)
	}
}
