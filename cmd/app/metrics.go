package app

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// runState is what one Run learns for its --metrics-file: the command,
// the registry transports it used and the results it rendered. It lives
// in the app's Metadata, one per Run.
type runState struct {
	start       time.Time
	metricsFile string
	command     string
	transports  []*registry.Transport
	syncs       []*cipsync.Result
	report      *promote.Report
}

// maxTransports bounds the transports a run keeps for its metrics: a
// command makes one or two; `cip audit serve` makes one per manifest
// reload, and has its own /metrics.
const maxTransports = 64

const stateKey = "cip-run"

// state returns the Run's state (a fresh one for an app made by hand).
func state(c *cli.Context) *runState {
	if s, ok := c.App.Metadata[stateKey].(*runState); ok {
		return s
	}
	return &runState{}
}

func (s *runState) addTransport(t *registry.Transport) {
	if s.metricsFile != "" && len(s.transports) < maxTransports {
		s.transports = append(s.transports, t)
	}
}

func (s *runState) addSyncs(rs ...*cipsync.Result) {
	for _, r := range rs {
		if r != nil {
			s.syncs = append(s.syncs, r)
		}
	}
}

// writeMetrics writes the run's metrics to s.metricsFile in Prometheus's
// text format, for node-exporter's textfile collector: to a temporary file
// beside it (a name the collector ignores, as it reads *.prom files only),
// then renamed over it, so that the collector never reads half a file.
// Every metric is a gauge of this run (each run replaces the file), with
// the command as a label so that several cip jobs can share a directory.
func (s *runState) writeMetrics(code int, end time.Time) error {
	reg := prometheus.NewRegistry()
	cmd := s.command
	if cmd == "" {
		cmd = "none"
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"command": cmd}}, labels)
		reg.MustRegister(g)
		return g
	}
	gauge("cip_run_exit_code", "The exit code of the last cip run (0 success, 1 runtime failure, 2 usage, 3 pending work, 130 interrupted).").
		WithLabelValues().Set(float64(code))
	gauge("cip_run_timestamp_seconds", "When the last cip run ended, in Unix seconds.").WithLabelValues().Set(float64(end.UnixNano()) / 1e9)
	gauge("cip_run_duration_seconds", "How long the last cip run took.").WithLabelValues().Set(end.Sub(s.start).Seconds())

	// The registries, as the shared transports counted them: every HTTP
	// attempt, retries and authentication included.
	requests := gauge("cip_run_requests", "HTTP requests the last run sent, by registry host, method and kind (manifest, blob, upload, tags, catalog, ping, other); retries included.", "registry", "method", "kind")
	responses := gauge("cip_run_responses", "Answers by registry host and status class (none: no answer, a dropped connection).", "registry", "class")
	retries := gauge("cip_run_retries", "Requests retried (429, 5xx, dropped connections), by registry host.", "registry")
	throttled := gauge("cip_run_throttled", "429 Too Many Requests answers, by registry host.", "registry")
	bytes := gauge("cip_run_bytes", "Body bytes by registry host and direction (sent: request bodies, received: response bodies).", "registry", "direction")
	hosts := map[string]registry.HostStats{}
	var order []string
	for _, t := range s.transports {
		for _, h := range t.Stats().Hosts {
			acc, ok := hosts[h.Host]
			if !ok {
				order = append(order, h.Host)
			}
			hosts[h.Host] = mergeHost(acc, h)
		}
	}
	for _, name := range order {
		h := hosts[name]
		for _, k := range h.ByKind {
			requests.WithLabelValues(name, k.Method, k.Kind).Add(float64(k.N))
		}
		for class, n := range map[string]int64{"1xx": h.Status1xx, "2xx": h.Status2xx, "3xx": h.Status3xx, "4xx": h.Status4xx, "5xx": h.Status5xx, "none": h.Failed} {
			responses.WithLabelValues(name, class).Set(float64(n))
		}
		retries.WithLabelValues(name).Set(float64(h.Retries))
		throttled.WithLabelValues(name).Set(float64(h.Throttled))
		bytes.WithLabelValues(name, "sent").Set(float64(h.BytesSent))
		bytes.WithLabelValues(name, "received").Set(float64(h.BytesReceived))
	}

	if len(s.syncs) > 0 {
		repos := gauge("cip_run_sync_repositories", "Repositories the last run's syncs crawled, by registry.", "registry")
		tags := gauge("cip_run_sync_tags", "Tags the last run's syncs listed, by registry.", "registry")
		fetched := gauge("cip_run_sync_manifests_fetched", "Manifests the last run's syncs fetched (new to the inventory), by registry.", "registry")
		for _, r := range s.syncs {
			for _, st := range r.Registries {
				repos.WithLabelValues(st.Registry).Add(float64(st.Repositories))
				tags.WithLabelValues(st.Registry).Add(float64(st.Tags))
				fetched.WithLabelValues(st.Registry).Add(float64(st.ManifestsFetched))
			}
		}
	}

	if rep := s.report; rep != nil {
		rows := gauge("cip_promote_rows", "Plan rows of the last promotion by destination and action: copied (digests), tagged (tags put), referred (referrers copied), skipped, lost.", "destination", "action")
		blobs := gauge("cip_promote_blobs", "Blobs the last promotion placed, by destination and how (sent: streamed from the source, mounted: from another repository).", "destination", "how")
		blobBytes := gauge("cip_promote_blob_bytes", "Blob bytes the last promotion placed, by destination and how (sent, mounted).", "destination", "how")
		errs := gauge("cip_promote_errors", "Rows of the last promotion that failed, by destination.", "destination")
		for _, d := range rep.Destinations {
			for action, n := range map[string]int{"copied": d.Copied, "tagged": d.Tagged, "referred": d.Referred, "skipped": d.Skipped, "lost": d.Lost} {
				rows.WithLabelValues(d.Destination, action).Set(float64(n))
			}
			blobs.WithLabelValues(d.Destination, "sent").Set(float64(d.BlobsSent))
			blobs.WithLabelValues(d.Destination, "mounted").Set(float64(d.BlobsMounted))
			blobBytes.WithLabelValues(d.Destination, "sent").Set(float64(d.BytesSent))
			blobBytes.WithLabelValues(d.Destination, "mounted").Set(float64(d.BytesMounted))
			errs.WithLabelValues(d.Destination).Set(float64(len(d.Errors)))
		}
		gauge("cip_promote_interrupted", "1 when the last promotion was interrupted before it finished.").WithLabelValues().Set(b2f(rep.Interrupted))
		gauge("cip_promote_verified", "References the last promotion checked with a live HEAD.").WithLabelValues().Set(float64(rep.Verified))
		gauge("cip_promote_mismatches", "References the last promotion's verification found wrong.").WithLabelValues().Set(float64(len(rep.Mismatches)))
	}
	if err := prometheus.WriteToTextfile(s.metricsFile, reg); err != nil {
		return fmt.Errorf("write metrics file %s: %w", s.metricsFile, err)
	}
	return nil
}

// mergeHost adds b's counters to a's (one host seen by two transports).
func mergeHost(a, b registry.HostStats) registry.HostStats {
	a.Host = b.Host
	a.Requests += b.Requests
	byKind := map[string]int{}
	for i, k := range a.ByKind {
		byKind[k.Method+" "+k.Kind] = i
	}
	for _, k := range b.ByKind {
		if i, ok := byKind[k.Method+" "+k.Kind]; ok {
			a.ByKind[i].N += k.N
			continue
		}
		a.ByKind = append(a.ByKind, k)
	}
	a.Status1xx += b.Status1xx
	a.Status2xx += b.Status2xx
	a.Status3xx += b.Status3xx
	a.Status4xx += b.Status4xx
	a.Status5xx += b.Status5xx
	a.Failed += b.Failed
	a.Retries += b.Retries
	a.Throttled += b.Throttled
	a.BytesSent += b.BytesSent
	a.BytesReceived += b.BytesReceived
	return a
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// commandName is the full name of the command a context runs ("promote",
// "audit serve").
func commandName(c *cli.Context) string {
	if c.Command == nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(c.Command.FullName(), c.App.Name))
}
