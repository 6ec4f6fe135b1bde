package promote

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
)

// spool keeps a run's items (plan rows to copy, references to verify) in
// order: in memory while they are few (spoolRows, a few MB of plan rows),
// else in a temporary file
// (gob-encoded, removed by close), so that a promotion of hundreds of
// thousands of rows holds a bounded amount of them and no inventory read
// stays open while it copies.
type spool[T any] struct {
	mem []T
	f   *os.File
	w   *bufio.Writer
	enc *gob.Encoder
	n   int
}

func (s *spool[T]) add(v T) error {
	s.n++
	if s.f == nil {
		if len(s.mem) < spoolRows {
			s.mem = append(s.mem, v)
			return nil
		}
		f, err := os.CreateTemp("", "cip-spool-*")
		if err != nil {
			return fmt.Errorf("spool plan rows: %w", err)
		}
		s.f, s.w = f, bufio.NewWriterSize(f, 1<<20)
		s.enc = gob.NewEncoder(s.w)
		for _, m := range s.mem {
			if err := s.enc.Encode(m); err != nil {
				return fmt.Errorf("spool plan rows: %w", err)
			}
		}
		s.mem = nil
	}
	if err := s.enc.Encode(v); err != nil {
		return fmt.Errorf("spool plan rows: %w", err)
	}
	return nil
}

// len is how many items the spool has.
func (s *spool[T]) len() int { return s.n }

// each calls fn with every item in the order added; it stops at fn's
// first error.
func (s *spool[T]) each(fn func(T) error) error {
	if s.f == nil {
		for _, v := range s.mem {
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool plan rows: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool plan rows: %w", err)
	}
	dec := gob.NewDecoder(bufio.NewReaderSize(s.f, 1<<20))
	for i := 0; i < s.n; i++ {
		var v T
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("read spooled plan rows: %w", err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	// Appending after a read goes on at the end.
	_, err := s.f.Seek(0, io.SeekEnd)
	return err
}

// close removes the spool's file, if it has one.
func (s *spool[T]) close() error {
	if s.f == nil {
		return nil
	}
	name := s.f.Name()
	err := s.f.Close()
	s.f = nil
	return errors.Join(err, os.Remove(name))
}
