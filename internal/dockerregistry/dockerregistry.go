// Package dockerregistry starts the real docker-registry server (the
// Debian package of distribution 2.8) on a free loopback port with the
// in-memory storage driver, for end-to-end tests and the bench harness.
package dockerregistry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Binary finds the docker-registry server: $CIP_DOCKER_REGISTRY, then PATH,
// then /usr/bin. The error names the Debian package to install.
func Binary() (string, error) {
	if p := os.Getenv("CIP_DOCKER_REGISTRY"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err == nil {
		return "/usr/bin/docker-registry", nil
	}
	return "", fmt.Errorf("docker-registry not found: install the Debian package (apt-get update && apt-get install -y docker-registry), or run `make test`, which does")
}

// Server is a running docker-registry.
type Server struct {
	Host string // 127.0.0.1:port
	cmd  *exec.Cmd
	dir  string
}

// Options configures Start.
type Options struct {
	// Extra is YAML appended under the top level of the config (e.g. auth
	// or notifications sections).
	Extra string
	// HTTPExtra is YAML appended under the http: section (e.g. tls).
	HTTPExtra string
	// Dir holds the config; empty means a new temporary directory.
	Dir string
	// Notify lists notifications endpoints: the server POSTs every event
	// (pushes, pulls, deletions of manifests and blobs) to each. Extra must
	// not hold a notifications section then.
	Notify []Endpoint
}

// Endpoint is one of docker-registry's notifications.endpoints.
type Endpoint struct {
	Name    string
	URL     string
	Headers map[string]string // sent with every request, e.g. Authorization
	// IgnoredMediaTypes are not sent (application/octet-stream: blobs).
	IgnoredMediaTypes []string
}

// notifications renders the notifications section for endpoints. The
// timeout and backoff are short so that a test's events arrive quickly
// once its receiver answers: docker-registry retries an endpoint that
// fails, after threshold failures waiting backoff between tries.
func notifications(endpoints []Endpoint) (string, error) {
	if len(endpoints) == 0 {
		return "", nil
	}
	type endpoint struct {
		Name              string              `yaml:"name"`
		URL               string              `yaml:"url"`
		Headers           map[string][]string `yaml:"headers,omitempty"`
		Timeout           string              `yaml:"timeout"`
		Threshold         int                 `yaml:"threshold"`
		Backoff           string              `yaml:"backoff"`
		IgnoredMediaTypes []string            `yaml:"ignoredmediatypes,omitempty"`
	}
	var eps []endpoint
	for _, e := range endpoints {
		ep := endpoint{Name: e.Name, URL: e.URL, Timeout: "5s", Threshold: 3, Backoff: "200ms", IgnoredMediaTypes: e.IgnoredMediaTypes}
		for k, v := range e.Headers {
			if ep.Headers == nil {
				ep.Headers = map[string][]string{}
			}
			ep.Headers[k] = []string{v}
		}
		eps = append(eps, ep)
	}
	b, err := yaml.Marshal(map[string]any{"notifications": map[string]any{"endpoints": eps}})
	if err != nil {
		return "", fmt.Errorf("render notifications: %w", err)
	}
	return string(b), nil
}

// Start runs docker-registry on a free loopback port and waits until it
// answers /v2/.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cip-docker-registry-"); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	notify, err := notifications(opts.Notify)
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  inmemory: {}
  delete:
    enabled: true
http:
  addr: %s
  secret: cip-test-secret
%s
%s
%s
`, host, indent(opts.HTTPExtra, "  "), opts.Extra, notify)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start docker-registry: %w", err)
	}
	logf.Close()
	s := &Server{Host: host, cmd: cmd, dir: dir}
	scheme := "http"
	if strings.Contains(opts.HTTPExtra, "tls:") {
		scheme = "https"
	}
	if err := s.wait(ctx, scheme); err != nil {
		s.Stop()
		log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
		return nil, fmt.Errorf("start docker-registry on %s: %w\n%s", host, err, log)
	}
	return s, nil
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n")
}

func (s *Server) wait(ctx context.Context, scheme string) error {
	deadline := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := client.Get(scheme + "://" + s.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no answer on /v2/ within 15s")
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	if s.dir != "" && strings.Contains(s.dir, "cip-docker-registry-") {
		os.RemoveAll(s.dir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// insecureTLS accepts the test's self-signed certificate for the readiness
// probe only; it never carries credentials.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec
