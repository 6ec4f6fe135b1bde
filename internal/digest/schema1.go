package digest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A signed schema 1 manifest ("pretty JWS", docker/libtrust) is the
// manifest's JSON with a "signatures" array spliced in before its closing
// brace. Each signature's protected header (base64url JSON) records
// formatLength, how many bytes of the document precede the splice, and
// formatTail (base64url), the bytes that followed them before signing
// (usually "\n}"). The payload, what was signed and what distribution
// hashes for the digest, is the document's first formatLength bytes
// followed by formatTail. Every signature must record the same two values.

// hasSignatures reports whether raw is a schema 1 manifest
// (schemaVersion 1) with a "signatures" member.
func hasSignatures(raw []byte) bool {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		Signatures    json.RawMessage `json:"signatures"`
	}
	return json.Unmarshal(raw, &probe) == nil && probe.SchemaVersion == 1 && probe.Signatures != nil
}

// Payload returns the signed payload of a signed schema 1 manifest, by
// libtrust's rule (ParsePrettySignature): the first formatLength bytes of
// raw and formatTail, both read from the signatures' protected headers,
// which must agree.
func Payload(raw []byte) ([]byte, error) {
	var doc struct {
		Signatures []struct {
			Protected string `json:"protected"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("read signatures: %w", err)
	}
	if len(doc.Signatures) == 0 {
		return nil, errors.New("no signatures")
	}
	length, tail := -1, []byte(nil)
	for i, s := range doc.Signatures {
		prot, err := base64URL(s.Protected)
		if err != nil {
			return nil, fmt.Errorf("signature %d: protected header: %w", i, err)
		}
		var h struct {
			FormatLength *float64 `json:"formatLength"`
			FormatTail   *string  `json:"formatTail"`
		}
		if err := json.Unmarshal(prot, &h); err != nil {
			return nil, fmt.Errorf("signature %d: protected header: %w", i, err)
		}
		if h.FormatLength == nil {
			return nil, fmt.Errorf("signature %d: no formatLength", i)
		}
		if h.FormatTail == nil {
			return nil, fmt.Errorf("signature %d: no formatTail", i)
		}
		t, err := base64URL(*h.FormatTail)
		if err != nil {
			return nil, fmt.Errorf("signature %d: formatTail: %w", i, err)
		}
		n := int(*h.FormatLength)
		if length >= 0 && (n != length || !bytes.Equal(t, tail)) {
			return nil, errors.New("signatures disagree on the format of the payload")
		}
		length, tail = n, t
	}
	if length < 0 || length > len(raw) {
		return nil, fmt.Errorf("formatLength %d outside the %d bytes of the manifest", length, len(raw))
	}
	out := make([]byte, 0, length+len(tail))
	out = append(out, raw[:length]...)
	return append(out, tail...), nil
}

// base64URL decodes JOSE's base64url, without padding (libtrust's
// joseBase64UrlDecode, which also drops newlines and spaces).
func base64URL(s string) ([]byte, error) {
	s = strings.NewReplacer("\n", "", " ", "").Replace(s)
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
