package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipdev/cip/internal/dockerregistry"
)

// The test's credentials. The bcrypt hash (cost 5, for speed) is of
// authPassword; it was made once with libxcrypt (Python's crypt module),
// because docker-registry's htpasswd accepts only bcrypt and the module has
// no bcrypt dependency to make one at test time.
const (
	authUser     = "cipuser"
	authPassword = "cip-e2e-Pa55w0rd-9d1c"
	authHash     = "$2a$05$Y2lwLWUyZS1zYWx0LTAxMeYofjzExpaQQe49VeOk.sCZs.3O/bucG"
)

// authRegistry is docker-registry with TLS (a CA made by the test) and
// htpasswd, on 127.0.0.2: go-containerregistry speaks plain HTTP to
// 127.0.0.1 and localhost, so a TLS registry needs another loopback
// address.
type authRegistry struct {
	Host   string // 127.0.0.2:port
	CAFile string
	pool   *x509.CertPool
}

func startAuthRegistry(t *testing.T) *authRegistry {
	t.Helper()
	bin, err := dockerregistry.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2: %v", err)
	}
	host := l.Addr().String()
	l.Close()

	// A CA, and a server certificate for 127.0.0.2 signed by it.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cip e2e test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.2"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.2")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	r := &authRegistry{Host: host, CAFile: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	r.pool.AddCert(ca)
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{{"ca.pem", "CERTIFICATE", caDER}, {"cert.pem", "CERTIFICATE", srvDER}, {"key.pem", "EC PRIVATE KEY", keyDER}} {
		writeFile(t, filepath.Join(dir, f.name), string(pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})))
	}
	writeFile(t, filepath.Join(dir, "htpasswd"), authUser+":"+authHash+"\n")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  inmemory: {}
http:
  addr: %s
  secret: cip-test-secret
  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: basic-realm
    path: %s
`, host, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "htpasswd"))
	writeFile(t, filepath.Join(dir, "config.yml"), cfg)
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := r.do(http.MethodGet, "/v2/", "")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry with TLS and htpasswd on %s: no 401 on /v2/ within 15s (%v)\n%s", host, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do requests path from the registry with the test's CA and, when
// password is not empty, basic auth.
func (r *authRegistry) do(method, path, password string) (*http.Response, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pool}}}
	req, _ := http.NewRequest(method, "https://"+r.Host+path, nil)
	if password != "" {
		req.SetBasicAuth(authUser, password)
	}
	return c.Do(req)
}

// repositories lists the registry's catalog with the right credentials.
func (r *authRegistry) repositories(t *testing.T) []string {
	t.Helper()
	resp, err := r.do(http.MethodGet, "/v2/_catalog", authPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cat struct{ Repositories []string }
	if err := json.NewDecoder(resp.Body).Decode(&cat); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("catalog of %s: %d %v", r.Host, resp.StatusCode, err)
	}
	return cat.Repositories
}

// dockerConfig writes a docker config.json with password for host and
// returns its directory (for DOCKER_CONFIG).
func dockerConfig(t *testing.T, host, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(authUser + ":" + password))
	writeFile(t, filepath.Join(dir, "config.json"), fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth))
	return dir
}

// cipEnv runs cip with extra environment and returns exit code, stdout and
// stderr.
func cipEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(cipBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// TestAuthTLS promotes into docker-registry behind TLS (a CA made by the
// test, trusted through SSL_CERT_FILE) and htpasswd, with credentials from
// a docker config file: an untrusted CA and wrong credentials fail before
// any write with an error naming the registry; the right ones work; the
// password and the base64 auth string appear in no output, report or
// inventory.
func TestAuthTLS(t *testing.T) {
	src := StartRegistry(t)
	seed(t, src.Host)
	reg := startAuthRegistry(t)
	dir := thinDirFor(t, src.Host, src.Host, reg.Host)
	work := t.TempDir()
	home := t.TempDir() // no ~/.docker of the machine's
	good := dockerConfig(t, reg.Host, authPassword)
	wrong := dockerConfig(t, reg.Host, "not-"+authPassword)
	secrets := []string{authPassword, base64.StdEncoding.EncodeToString([]byte(authUser + ":" + authPassword))}
	var seen []string // every output, report and inventory, searched at the end
	db := filepath.Join(work, "inv.db")
	report := filepath.Join(work, "report.json")

	run := func(name string, want int, env []string, wantErr []string, args ...string) {
		t.Helper()
		code, stdout, stderr := cipEnv(t, append([]string{"HOME=" + home}, env...), append([]string{"--db", db}, args...)...)
		seen = append(seen, stdout, stderr)
		if code != want {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, code, want, stdout, stderr)
		}
		if want != 0 {
			t.Logf("%s: exit %d: %s", name, code, lastLine(stderr))
		}
		for _, w := range wantErr {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr = %q, want %q", name, stderr, w)
			}
		}
	}
	promote := []string{"promote", "--thin-manifest-dir", dir, "--confirm", "--report", report}

	// The registry's CA is not trusted: a clear TLS error, nothing written.
	run("untrusted CA", 1, []string{"DOCKER_CONFIG=" + good}, []string{reg.Host, "certificate"}, promote...)
	if repos := reg.repositories(t); len(repos) != 0 {
		t.Errorf("untrusted CA: registry holds %v, want nothing", repos)
	}
	// Trusted, but no credentials, then wrong ones: refused before any write.
	run("no credentials", 1, []string{"SSL_CERT_FILE=" + reg.CAFile, "DOCKER_CONFIG=" + t.TempDir()}, []string{reg.Host, "UNAUTHORIZED"}, promote...)
	run("wrong credentials", 1, []string{"SSL_CERT_FILE=" + reg.CAFile, "DOCKER_CONFIG=" + wrong}, []string{reg.Host, "UNAUTHORIZED"}, promote...)
	if repos := reg.repositories(t); len(repos) != 0 {
		t.Errorf("wrong credentials: registry holds %v, want nothing", repos)
	}
	// The right credentials: promote, verify, sync and snapshot work.
	env := []string{"SSL_CERT_FILE=" + reg.CAFile, "DOCKER_CONFIG=" + good}
	run("right credentials", 0, env, nil, promote...)
	run("verify", 0, env, nil, "verify", "--thin-manifest-dir", dir)
	run("sync", 0, env, []string{"synced " + reg.Host + ": 7 repositories"}, "sync", reg.Host+"/prod")
	if repos := reg.repositories(t); len(repos) != 7 {
		t.Errorf("registry holds %v, want the 7 promoted repositories", repos)
	}

	for _, p := range []string{report, db, db + "-wal"} {
		data, err := os.ReadFile(p)
		if err != nil && p != db+"-wal" {
			t.Fatal(err)
		}
		seen = append(seen, string(data))
	}
	for _, s := range secrets {
		for i, out := range seen {
			if strings.Contains(out, s) {
				t.Errorf("secret %q found in output #%d:\n%s", s, i, out[:min(len(out), 2000)])
			}
		}
	}
	// The inventory is private to its owner.
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("inventory mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}
