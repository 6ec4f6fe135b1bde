package regtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Schema1 returns a signed Docker schema 1 manifest of repository name and
// tag whose fsLayers are layers (blob digests, top layer first), signed as
// docker/libtrust's JSONSignature.Sign and PrettySignature do, with a fresh
// ECDSA P-256 key (ES256), so that distribution accepts it when schema 1
// is enabled. It also returns the digest distribution names it by: the
// sha256 of the payload, the manifest without its signatures.
func Schema1(t testing.TB, name, tag string, layers []string) (raw []byte, payloadDigest string) {
	t.Helper()
	type fsLayer struct {
		BlobSum string `json:"blobSum"`
	}
	type history struct {
		V1Compatibility string `json:"v1Compatibility"`
	}
	m := struct {
		SchemaVersion int       `json:"schemaVersion"`
		Name          string    `json:"name"`
		Tag           string    `json:"tag"`
		Architecture  string    `json:"architecture"`
		FSLayers      []fsLayer `json:"fsLayers"`
		History       []history `json:"history"`
	}{SchemaVersion: 1, Name: name, Tag: tag, Architecture: "amd64"}
	for i, l := range layers {
		m.FSLayers = append(m.FSLayers, fsLayer{BlobSum: l})
		// distribution checks that history and fsLayers match in number
		// and that each v1Compatibility is JSON with an id.
		v1, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("%064x", i+1), "created": "2015-01-01T00:00:00Z"})
		m.History = append(m.History, history{V1Compatibility: string(v1)})
	}
	// libtrust's NewJSONSignatureFromMap indents by three spaces; the
	// payload's last "\n}" is its format tail.
	payload, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	formatLength := len(payload) - 2
	formatTail := payload[formatLength:]

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	prot, _ := json.Marshal(map[string]any{
		"formatLength": formatLength,
		"formatTail":   b64(formatTail),
		"time":         time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339),
	})
	protected := b64(prot)
	signed := sha256.Sum256([]byte(protected + "." + b64(payload)))
	r, s, err := ecdsa.Sign(rand.Reader, key, signed[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	pad := func(b []byte) string {
		out := make([]byte, 32)
		copy(out[32-len(b):], b)
		return b64(out)
	}
	signatures, err := json.MarshalIndent([]map[string]any{{
		"header": map[string]any{
			"jwk": map[string]string{"crv": "P-256", "kty": "EC", "x": pad(key.X.Bytes()), "y": pad(key.Y.Bytes())},
			"alg": "ES256",
		},
		"signature": b64(sig),
		"protected": protected,
	}}, "   ", "   ")
	if err != nil {
		t.Fatal(err)
	}
	// PrettySignature: the payload up to formatLength, then the
	// signatures, then the closing brace.
	out := append([]byte{}, payload[:formatLength]...)
	out = append(out, ",\n   \"signatures\": "...)
	out = append(out, signatures...)
	out = append(out, "\n}"...)
	return out, fmt.Sprintf("sha256:%x", sha256.Sum256(payload))
}
