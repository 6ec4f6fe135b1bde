package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cipdev/cip/internal/googlehost"
)

// HostConfig is what is known of one registry host's limits.
type HostConfig struct {
	// QPS is the host's quota in requests per second: the pace never goes
	// above it (and starts there); 0 means the transport's QPS.
	QPS float64
	// Jobs bounds the requests in flight to the host (to each of its
	// projects when QuotaPer is QuotaPerProject); 0 means the transport's
	// Jobs.
	Jobs int
	// QuotaPer says what the host's quota counts: QuotaPerHost (one pace
	// for the host) or QuotaPerProject (a pace, and Jobs, per first path
	// component of the repository: Artifact Registry and gcr.io count
	// requests per project and region, and every staging repository of
	// registry.k8s.io is its own project). "" means the default:
	// QuotaPerProject on Google's hosts, QuotaPerHost elsewhere.
	QuotaPer string
	// StartQPS is the pace a host (each project) starts at when no
	// ceiling is set, a guess that climbs until the host refuses: 0 with
	// StartSet means unpaced; unset (StartSet false) means the default:
	// DefaultGoogleStartQPS on Google's hosts, unpaced elsewhere.
	StartQPS float64
	StartSet bool
}

// What a host's quota counts (HostConfig.QuotaPer).
const (
	QuotaPerHost    = "host"
	QuotaPerProject = "project"
)

// DefaultGoogleStartQPS is the pace Google's registry hosts start at, per
// project: Artifact Registry answers 429 past roughly 50-80 requests/s per
// project and region (and the Kubernetes promoter holds itself to 50/s in
// all), so 50/s is the low end of what it grants. Starting there, instead
// of at the 100-200/s that 8 requests in flight offer at tens of ms each,
// avoids the refusals that would otherwise measure the quota; the pace
// then climbs slowly (a guess) and finds a larger quota by its first 429.
const DefaultGoogleStartQPS = 50

// resolve fills what c leaves to the defaults for host.
func (c HostConfig) resolve(host string) HostConfig {
	google := googlehost.Is(host)
	if c.QuotaPer == "" {
		c.QuotaPer = QuotaPerHost
		if google {
			c.QuotaPer = QuotaPerProject
		}
	}
	if !c.StartSet {
		c.StartSet = true
		if google {
			c.StartQPS = DefaultGoogleStartQPS
		}
	}
	return c
}

// HostsConfig holds known limits per registry host, read from a hosts
// config file (LoadHostsConfig). A nil *HostsConfig knows no host.
type HostsConfig struct {
	exact    map[string]HostConfig
	patterns []hostPattern // in file order
}

type hostPattern struct {
	pattern string
	cfg     HostConfig
}

// Lookup returns the limits for host (host[:port]): its own entry, else the
// first pattern (in file order) that matches it.
func (c *HostsConfig) Lookup(host string) (HostConfig, bool) {
	if c == nil {
		return HostConfig{}, false
	}
	if hc, ok := c.exact[host]; ok {
		return hc, true
	}
	for _, p := range c.patterns {
		if ok, _ := path.Match(p.pattern, host); ok {
			return p.cfg, true
		}
	}
	return HostConfig{}, false
}

// yamlLine is how yaml.v3 places a syntax error.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// maxHostsConfigSize bounds a hosts config file: a few lines per host.
const maxHostsConfigSize = 1 << 20

// LoadHostsConfig reads a hosts config file:
//
//	hosts:
//	  "*-docker.pkg.dev":   # a pattern: * matches any run of characters but /
//	    qps: 60             # the quota, requests per second
//	    jobs: 8             # requests in flight
//	    quota-per: project  # a quota per project (first path component), as
//	                        # Google's hosts count it; or host
//	    start-qps: 50       # the pace to start at without a ceiling: a guess
//	                        # that climbs until a 429 measures the quota
//	  registry.example.com:5000:
//	    qps: 20
//
// Google's hosts (gcr.io, *.gcr.io, *.pkg.dev, *.google.com: internal/googlehost) default to
// quota-per: project and start-qps: 50; other hosts to quota-per: host,
// unpaced until their first 429.
//
// The YAML is strict: unknown fields, duplicate hosts, aliases, and values
// of the wrong type are errors naming the file and line.
func LoadHostsConfig(file string) (*HostsConfig, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read hosts config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHostsConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read hosts config %s: %w", file, err)
	}
	if len(data) > maxHostsConfigSize {
		return nil, fmt.Errorf("read hosts config %s: larger than %d bytes", file, maxHostsConfigSize)
	}
	return ParseHostsConfig(file, data)
}

// ParseHostsConfig parses the contents of a hosts config file (see
// LoadHostsConfig); file names it in errors.
func ParseHostsConfig(file string, data []byte) (*HostsConfig, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &HostsConfig{exact: map[string]HostConfig{}}, nil
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", file, m[1], m[2])
		}
		return nil, fmt.Errorf("%s: %s", file, msg)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fail(extra.Line, "more than one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if bad := findAlias(root); bad != nil {
		return nil, fail(bad.Line, "aliases and anchors are not allowed")
	}
	out := &HostsConfig{exact: map[string]HostConfig{}}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return out, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "want a mapping with a hosts field")
	}
	var hosts *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "hosts" {
			return nil, fail(k.Line, "unknown field %q (want hosts)", k.Value)
		}
		if hosts != nil {
			return nil, fail(k.Line, "duplicate field hosts")
		}
		hosts = v
	}
	if hosts == nil || (hosts.Kind == yaml.ScalarNode && hosts.Tag == "!!null") {
		return out, nil
	}
	if hosts.Kind != yaml.MappingNode {
		return nil, fail(hosts.Line, "hosts: want a mapping of host names to limits")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(hosts.Content); i += 2 {
		k, v := hosts.Content[i], hosts.Content[i+1]
		host := k.Value
		if k.Kind != yaml.ScalarNode || host == "" || strings.ContainsAny(host, "/ \t") {
			return nil, fail(k.Line, "host %q: want host[:port] or a pattern such as *-docker.pkg.dev", host)
		}
		if _, err := path.Match(host, ""); err != nil {
			return nil, fail(k.Line, "host %q: bad pattern: %v", host, err)
		}
		if first, ok := seen[host]; ok {
			return nil, fail(k.Line, "host %q given twice (first on line %d)", host, first)
		}
		seen[host] = k.Line
		hc, err := parseHostConfig(v, fail, host)
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(host, "*?[") {
			out.patterns = append(out.patterns, hostPattern{pattern: host, cfg: hc})
		} else {
			out.exact[host] = hc
		}
	}
	return out, nil
}

func parseHostConfig(v *yaml.Node, fail func(int, string, ...any) error, host string) (HostConfig, error) {
	var hc HostConfig
	if v.Kind != yaml.MappingNode {
		return hc, fail(v.Line, "host %q: want a mapping with qps, jobs, quota-per or start-qps", host)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if seen[k.Value] {
			return hc, fail(k.Line, "host %q: duplicate field %s", host, k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "qps":
			q, err := strconv.ParseFloat(val.Value, 64)
			if val.Kind != yaml.ScalarNode || (val.Tag != "!!int" && val.Tag != "!!float") || err != nil || q <= 0 || math.IsInf(q, 0) || math.IsNaN(q) {
				return hc, fail(val.Line, "host %q: qps %q: want a number of requests per second above 0", host, val.Value)
			}
			hc.QPS = q
		case "jobs":
			j, err := strconv.Atoi(val.Value)
			if val.Kind != yaml.ScalarNode || val.Tag != "!!int" || err != nil || j <= 0 || j > 4096 {
				return hc, fail(val.Line, "host %q: jobs %q: want a whole number of requests in flight from 1 to 4096", host, val.Value)
			}
			hc.Jobs = j
		case "quota-per":
			if val.Kind != yaml.ScalarNode || (val.Value != QuotaPerHost && val.Value != QuotaPerProject) {
				return hc, fail(val.Line, "host %q: quota-per %q: want host or project", host, val.Value)
			}
			hc.QuotaPer = val.Value
		case "start-qps":
			q, err := strconv.ParseFloat(val.Value, 64)
			if val.Kind != yaml.ScalarNode || (val.Tag != "!!int" && val.Tag != "!!float") || err != nil || q < 0 || math.IsInf(q, 0) || math.IsNaN(q) {
				return hc, fail(val.Line, "host %q: start-qps %q: want a number of requests per second, 0 for unpaced", host, val.Value)
			}
			hc.StartQPS, hc.StartSet = q, true
		default:
			return hc, fail(k.Line, "host %q: unknown field %q (want qps, jobs, quota-per or start-qps)", host, k.Value)
		}
	}
	return hc, nil
}

func findAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return n
	}
	for _, c := range n.Content {
		if bad := findAlias(c); bad != nil {
			return bad
		}
	}
	return nil
}
