package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PublicKey is a public key signatures are checked with.
type PublicKey struct {
	// Name says where the key came from (its file), for messages.
	Name     string
	key      crypto.PublicKey
	verifier signature.Verifier
	// hint is cosign's and sigstore-go's key hint: the base64 of the
	// SHA-256 of the key's DER (PKIX) bytes.
	hint string
}

// ParsePublicKey reads a PEM public key (what `cosign generate-key-pair`
// writes to cosign.pub: ECDSA, RSA or Ed25519). name says where it came
// from.
func ParsePublicKey(name string, pemBytes []byte) (*PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("read public key %s: no PEM block", name)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("read public key %s: a PEM %q block, not a PUBLIC KEY", name, block.Type)
	}
	key, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %w", name, err)
	}
	return newPublicKey(name, key)
}

func newPublicKey(name string, key crypto.PublicKey) (*PublicKey, error) {
	v, err := signature.LoadDefaultVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %w", name, err)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %w", name, err)
	}
	sum := sha256.Sum256(der)
	return &PublicKey{Name: name, key: key, verifier: v, hint: base64.StdEncoding.EncodeToString(sum[:])}, nil
}

// PEM returns the key as PEM (a cosign.pub).
func (k *PublicKey) PEM() []byte {
	b, _ := cryptoutils.MarshalPublicKeyToPEM(k.key)
	return b
}

// Equal reports whether k and o are the same key.
func (k *PublicKey) Equal(o *PublicKey) bool { return o != nil && k.hint == o.hint }

// PEM types of cosign's encrypted private keys: cosign v2 and later write
// the first, older releases the second; both are scrypt + secretbox over
// PKCS #8 (go-securesystemslib's encrypted format).
const (
	sigstorePrivateKeyType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	cosignPrivateKeyType   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// Key is a private key cip signs with, and its public half.
type Key struct {
	Public *PublicKey
	signer signature.SignerVerifier
	alg    signature.AlgorithmDetails
}

// ParseKey reads a cosign private key file (cosign.key, as `cosign
// generate-key-pair` writes it) encrypted with password.
func ParseKey(name string, pemBytes, password []byte) (*Key, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("read key %s: no PEM block", name)
	}
	if block.Type != sigstorePrivateKeyType && block.Type != cosignPrivateKeyType {
		return nil, fmt.Errorf("read key %s: a PEM %q block, not a cosign private key (%s)", name, block.Type, sigstorePrivateKeyType)
	}
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		return nil, fmt.Errorf("read key %s: decrypt (wrong password?): %w", name, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	return NewKey(name, priv)
}

// NewKey makes a Key of an ECDSA, RSA or Ed25519 private key.
func NewKey(name string, priv crypto.PrivateKey) (*Key, error) {
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("read key %s: %T cannot sign", name, priv)
	}
	switch s.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("read key %s: unsupported key type %T", name, priv)
	}
	sv, err := signature.LoadDefaultSignerVerifier(s)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	pub, err := newPublicKey(name, s.Public())
	if err != nil {
		return nil, err
	}
	alg, err := signature.GetDefaultAlgorithmDetails(s.Public())
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	return &Key{Public: pub, signer: sv, alg: alg}, nil
}

// EncryptKey writes priv as cosign does (cosign.key), encrypted with
// password: what ParseKey reads. For tests and tools that make keys.
func EncryptKey(priv crypto.PrivateKey, password []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: sigstorePrivateKeyType, Bytes: enc}), nil
}

// signBytes signs data (the hash the key's algorithm uses is computed here).
func (k *Key) signBytes(data []byte) ([]byte, error) {
	return k.signer.SignMessage(bytes.NewReader(data))
}

// keypair adapts a Key to sigstore-go's sign.Keypair.
type keypair struct{ k *Key }

func (p keypair) GetHashAlgorithm() protocommon.HashAlgorithm { return p.k.alg.GetProtoHashType() }
func (p keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return p.k.alg.GetSignatureAlgorithm()
}
func (p keypair) GetHint() []byte { return []byte(p.k.Public.hint) }
func (p keypair) GetKeyAlgorithm() string {
	switch p.k.Public.key.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA"
	case *rsa.PublicKey:
		return "RSA"
	default:
		return "ED25519"
	}
}
func (p keypair) GetPublicKey() crypto.PublicKey { return p.k.Public.key }
func (p keypair) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(p.k.Public.key)
	return string(b), err
}

// SignData signs data and returns the signature and the digest signed
// (sigstore-go's contract; the digest is nil for Ed25519, which signs the
// message itself).
func (p keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	sig, err := p.k.signBytes(data)
	if err != nil {
		return nil, nil, err
	}
	var digest []byte
	if h := p.k.alg.GetHashType(); h != 0 {
		hh := h.New()
		hh.Write(data)
		digest = hh.Sum(nil)
	}
	return sig, digest, nil
}
