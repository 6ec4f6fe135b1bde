package liveline

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLiveDrawsThenClears(t *testing.T) {
	var buf syncBuffer
	l := Start(&buf, true, func() string { return "working" })
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "working") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	l.Stop()
	l.Stop() // twice is fine
	got := buf.String()
	if !strings.Contains(got, "\r\033[Kworking") || !strings.HasSuffix(got, "\r\033[K") {
		t.Errorf("output = %q, want the status drawn, then the line cleared", got)
	}
}

// A line printed while the status is drawn clears it and ends with a
// newline; off a terminal it is a plain line.
func TestPrintln(t *testing.T) {
	var buf syncBuffer
	l := Start(&buf, true, func() string { return "working" })
	l.Println("retrying reg in 3s (429)")
	l.Stop()
	if got := buf.String(); !strings.HasPrefix(got, "\r\033[Kretrying reg in 3s (429)\n") {
		t.Errorf("live output = %q, want the line printed over the status", got)
	}
	var plain syncBuffer
	l = Start(&plain, false, func() string { return "working" })
	l.Println("gave up on reg")
	l.Stop()
	if got := plain.String(); got != "gave up on reg\n" {
		t.Errorf("plain output = %q, want the line alone", got)
	}
}

func TestNotLiveDrawsNothing(t *testing.T) {
	var buf syncBuffer
	l := Start(&buf, false, func() string { return "working" })
	time.Sleep(2 * redrawEvery)
	l.Stop()
	if buf.String() != "" {
		t.Errorf("output = %q, want nothing off a terminal", buf.String())
	}
	Start(nil, true, func() string { return "x" }).Stop()
}

func TestBar(t *testing.T) {
	tests := []struct {
		done, all int64
		want      string
	}{
		{0, 0, "[    ]"},
		{1, 4, "[=   ]"},
		{4, 4, "[====]"},
		{9, 4, "[====]"},
	}
	for _, tt := range tests {
		if got := Bar(tt.done, tt.all, 4); got != tt.want {
			t.Errorf("Bar(%d, %d, 4) = %q, want %q", tt.done, tt.all, got, tt.want)
		}
	}
}

func TestEvery(t *testing.T) {
	var mu sync.Mutex
	n := 0
	l := Every(10*time.Millisecond, func() {
		mu.Lock()
		n++
		mu.Unlock()
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := n
		mu.Unlock()
		if got >= 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.Stop()
	mu.Lock()
	after := n
	mu.Unlock()
	if after < 3 {
		t.Fatalf("Every(10ms) ticked %d times in 5s, want at least 3", after)
	}
	time.Sleep(30 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n != after {
		t.Errorf("Every ticked after Stop: %d, then %d", after, n)
	}
	Every(0, func() { t.Error("Every(0) ticked") }).Stop()
}
