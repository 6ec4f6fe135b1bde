package registry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads a listing page's JSON as it arrives, keeping nothing but
// the strings its caller asks for: a page of any size costs the entries
// kept, not its bytes (encoding/json's Decoder holds a whole value, and its
// Token API allocates per token). It enforces the listing's byte cap and a
// cap per string or number, and is strict: anything that is not JSON is an
// error.
type scanner struct {
	r   *bufio.Reader
	l   *listing
	buf []byte // a string being decoded
}

func newScanner(r io.Reader, l *listing) *scanner {
	return &scanner{r: bufio.NewReaderSize(&countingReader{r: r, l: l}, 64<<10), l: l}
}

// countingReader counts a listing's bytes and fails past maxListBytes.
type countingReader struct {
	r io.Reader
	l *listing
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.l.bytes += int64(n)
	if c.l.bytes > maxListBytes {
		return 0, fmt.Errorf("%w: more than %d MiB", ErrListTooLarge, maxListBytes>>20)
	}
	return n, err
}

// errSyntax is any byte sequence that is not JSON.
var errSyntax = errors.New("invalid JSON")

func (s *scanner) byte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == io.EOF {
		return 0, io.ErrUnexpectedEOF
	}
	return b, err
}

// peek returns the next byte that is not white space, without consuming it.
func (s *scanner) peek() (byte, error) {
	for {
		b, err := s.byte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b, s.r.UnreadByte()
	}
}

// expect consumes white space and then want.
func (s *scanner) expect(want byte) error {
	b, err := s.peek()
	if err != nil {
		return err
	}
	if b != want {
		return fmt.Errorf("%w: got %q, want %q", errSyntax, b, want)
	}
	_, err = s.byte()
	return err
}

// end checks that nothing but white space follows the value.
func (s *scanner) end() error {
	_, err := s.peek()
	if err == io.ErrUnexpectedEOF {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: data after the value", errSyntax)
}

// null consumes a null when one comes next, and reports whether it did.
func (s *scanner) null() (bool, error) {
	b, err := s.peek()
	if err != nil || b != 'n' {
		return false, err
	}
	return true, s.literal("null")
}

func (s *scanner) literal(lit string) error {
	for i := range len(lit) {
		b, err := s.byte()
		if err != nil {
			return err
		}
		if b != lit[i] {
			return fmt.Errorf("%w: got %q in %s", errSyntax, b, lit)
		}
	}
	return nil
}

// object reads an object (or null), calling member with each key; member
// must consume the value.
func (s *scanner) object(member func(key string) error) error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if err := s.expect('{'); err != nil {
		return err
	}
	if b, err := s.peek(); err != nil {
		return err
	} else if b == '}' {
		_, err := s.byte()
		return err
	}
	for {
		key, err := s.string()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		b, err := s.peek()
		if err != nil {
			return err
		}
		s.byte() //nolint:errcheck // peeked
		switch b {
		case ',':
		case '}':
			return nil
		default:
			return fmt.Errorf("%w: got %q after an object member", errSyntax, b)
		}
	}
}

// array reads an array (or null), calling elem for each element; elem
// must consume it.
func (s *scanner) array(elem func() error) error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if err := s.expect('['); err != nil {
		return err
	}
	if b, err := s.peek(); err != nil {
		return err
	} else if b == ']' {
		_, err := s.byte()
		return err
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		b, err := s.peek()
		if err != nil {
			return err
		}
		s.byte() //nolint:errcheck // peeked
		switch b {
		case ',':
		case ']':
			return nil
		default:
			return fmt.Errorf("%w: got %q after an array element", errSyntax, b)
		}
	}
}

// string reads a JSON string, at most maxJSONToken bytes decoded. Invalid
// UTF-8 becomes U+FFFD, as encoding/json does.
func (s *scanner) string() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	s.buf = s.buf[:0]
	for {
		if len(s.buf) > maxJSONToken {
			return "", fmt.Errorf("%w: a JSON value longer than %d KiB", ErrListTooLarge, maxJSONToken>>10)
		}
		b, err := s.byte()
		if err != nil {
			return "", err
		}
		switch {
		case b == '"':
			if !utf8.Valid(s.buf) {
				return string([]rune(string(s.buf))), nil // each invalid byte: U+FFFD
			}
			return string(s.buf), nil
		case b < 0x20:
			return "", fmt.Errorf("%w: control character %q in a string", errSyntax, b)
		case b != '\\':
			s.buf = append(s.buf, b)
			continue
		}
		e, err := s.byte()
		if err != nil {
			return "", err
		}
		switch e {
		case '"', '\\', '/':
			s.buf = append(s.buf, e)
		case 'b':
			s.buf = append(s.buf, '\b')
		case 'f':
			s.buf = append(s.buf, '\f')
		case 'n':
			s.buf = append(s.buf, '\n')
		case 'r':
			s.buf = append(s.buf, '\r')
		case 't':
			s.buf = append(s.buf, '\t')
		case 'u':
			r, err := s.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				// A pair, \uD83D\uDE00; alone, U+FFFD.
				if next, _ := s.r.Peek(2); len(next) == 2 && next[0] == '\\' && next[1] == 'u' {
					s.r.Discard(2) //nolint:errcheck // peeked
					r2, err := s.hex4()
					if err != nil {
						return "", err
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
					} else {
						s.buf = utf8.AppendRune(s.buf, utf8.RuneError)
						r = r2
						if utf16.IsSurrogate(r) {
							r = utf8.RuneError
						}
					}
				} else {
					r = utf8.RuneError
				}
			}
			s.buf = utf8.AppendRune(s.buf, r)
		default:
			return "", fmt.Errorf("%w: escape \\%c", errSyntax, e)
		}
	}
}

func (s *scanner) hex4() (rune, error) {
	var h [4]byte
	for i := range h {
		b, err := s.byte()
		if err != nil {
			return 0, err
		}
		h[i] = b
	}
	v, err := strconv.ParseUint(string(h[:]), 16, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: escape \\u%s", errSyntax, h[:])
	}
	return rune(v), nil
}

// number reads a JSON number and returns its text.
func (s *scanner) number() (string, error) {
	if _, err := s.peek(); err != nil {
		return "", err
	}
	s.buf = s.buf[:0]
	for {
		b, err := s.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		if !(b >= '0' && b <= '9' || b == '-' || b == '+' || b == '.' || b == 'e' || b == 'E') {
			s.r.UnreadByte() //nolint:errcheck // just read
			break
		}
		if s.buf = append(s.buf, b); len(s.buf) > maxJSONToken {
			return "", fmt.Errorf("%w: a JSON value longer than %d KiB", ErrListTooLarge, maxJSONToken>>10)
		}
	}
	if !validNumber(s.buf) {
		return "", fmt.Errorf("%w: number %q", errSyntax, s.buf)
	}
	return string(s.buf), nil
}

// validNumber is JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}

// maxJSONDepth bounds the nesting skip walks: a listing is four levels
// deep at most (GCR's manifest map); a deeper value is hostile, and
// unbounded recursion would exhaust the stack.
const maxJSONDepth = 32

// skip consumes one value of any kind (objects and arrays are walked, not
// held).
func (s *scanner) skip() error { return s.skipDepth(0) }

func (s *scanner) skipDepth(depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: nested deeper than %d", errSyntax, maxJSONDepth)
	}
	b, err := s.peek()
	if err != nil {
		return err
	}
	switch {
	case b == '{':
		return s.object(func(string) error { return s.skipDepth(depth + 1) })
	case b == '[':
		return s.array(func() error { return s.skipDepth(depth + 1) })
	case b == '"':
		_, err := s.string()
		return err
	case b == 't':
		return s.literal("true")
	case b == 'f':
		return s.literal("false")
	case b == 'n':
		return s.literal("null")
	case b == '-' || b >= '0' && b <= '9':
		_, err := s.number()
		return err
	}
	return fmt.Errorf("%w: unexpected %q", errSyntax, b)
}
