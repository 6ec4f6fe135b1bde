package audit_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/audit"
)

// distEnvelope is a distribution envelope as docker-registry 2.8 sends it,
// with the fields it sets on a manifest push.
func distEnvelope(events ...string) string {
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

func distEvent(id, action, repo, digest, tag, kind string) string {
	url := fmt.Sprintf("http://prod.example/v2/%s/%s/%s", repo, kind, digest)
	mt := "application/vnd.oci.image.manifest.v1+json"
	if kind == "blobs" {
		mt = "application/octet-stream"
	}
	return fmt.Sprintf(`{"id":%q,"timestamp":"2026-12-01T10:00:00.123456789Z","action":%q,
		"target":{"mediaType":%q,"size":527,"digest":%q,"length":527,"repository":%q,"url":%q,"tag":%q},
		"request":{"id":"r1","addr":"127.0.0.1:40000","host":"prod.example","method":"PUT","useragent":"go-containerregistry"},
		"actor":{},"source":{"addr":"registry:5000","instanceID":"i1"}}`, id, action, mt, digest, repo, url, tag)
}

func TestParseDistribution(t *testing.T) {
	body := distEnvelope(
		distEvent("e1", "push", "prod/app", dA, "v1", "manifests"),
		distEvent("e2", "push", "prod/app", dX, "", "blobs"),
		distEvent("e3", "pull", "prod/app", dA, "v1", "manifests"),
		distEvent("e4", "mount", "prod/app", dX, "", "blobs"),
		distEvent("e5", "delete", "prod/app", dA, "", "manifests"),
		distEvent("e6", "push", "prod/app", dA, "", "manifests"),
	)
	evs, err := audit.ParseEnvelope([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ ID, Action, Repository, Digest, Tag, Ignored, Invalid string }
	var got []row
	for _, e := range evs {
		if e.Source != audit.SourceDistribution || (e.Ignored == "" && e.Registry != "prod.example") {
			t.Errorf("event %s: source %q, registry %q", e.ID, e.Source, e.Registry)
		}
		got = append(got, row{e.ID, e.Action, e.Repository, e.Digest, e.Tag, e.Ignored, e.Invalid})
	}
	want := []row{
		{"e1", "push", "prod.example/prod/app", dA, "v1", "", ""},
		{"e2", "push", "prod.example/prod/app", dX, "", audit.IgnoredBlob, ""},
		{"e3", "pull", "", dA, "v1", audit.IgnoredPull, ""},
		{"e4", "mount", "", dX, "", audit.IgnoredBlob, ""},
		{"e5", "delete", "prod.example/prod/app", dA, "", "", ""},
		{"e6", "push", "prod.example/prod/app", dA, "", "", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseEnvelope (-want +got):\n%s", diff)
	}
	if evs[0].OccurredAt != "2026-12-01T10:00:00.123456789Z" {
		t.Errorf("OccurredAt = %q", evs[0].OccurredAt)
	}
}

func TestParseDistributionInvalidEvents(t *testing.T) {
	for _, tc := range []struct {
		name, event, invalid string
	}{
		{"unknown action", distEvent("x", "patch", "prod/app", dA, "", "manifests"), `unknown action "patch"`},
		{"bad repository", distEvent("x", "push", "Prod/App", dA, "", "manifests"), "repository"},
		{"bad digest", distEvent("x", "push", "prod/app", "sha256:abc", "", "manifests"), "digest"},
		{"bad tag", distEvent("x", "push", "prod/app", dA, "-v1", "manifests"), "tag"},
		{"no digest", distEvent("x", "push", "prod/app", "", "v1", "manifests"), "names no digest"},
		{"no host", `{"id":"x","action":"push","target":{"repository":"prod/app","digest":"` + dA + `"}}`, "no registry host"},
		{"host from the URL", `{"id":"x","action":"push","target":{"repository":"prod/app","digest":"` + dA + `","url":"http://prod.example/v2/prod/app/manifests/` + dA + `"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := audit.ParseEnvelope([]byte(distEnvelope(tc.event)))
			if err != nil {
				t.Fatal(err)
			}
			if got := evs[0].Invalid; (tc.invalid == "") != (got == "") || !strings.Contains(got, tc.invalid) {
				t.Errorf("Invalid = %q, want %q", got, tc.invalid)
			}
		})
	}
}

// An event without an id is named by its content, so a redelivery of the
// same bytes is the same event.
func TestParseDistributionMissingID(t *testing.T) {
	ev := `{"action":"push","target":{"repository":"prod/app","digest":"` + dA + `","url":"http://prod.example/v2/prod/app/manifests/x"}}`
	a, err := audit.ParseEnvelope([]byte(distEnvelope(ev)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := audit.ParseEnvelope([]byte(distEnvelope(ev)))
	c, _ := audit.ParseEnvelope([]byte(distEnvelope(strings.Replace(ev, "push", "delete", 1))))
	if !strings.HasPrefix(a[0].ID, "sha256:") || a[0].ID != b[0].ID || a[0].ID == c[0].ID {
		t.Errorf("ids %q, %q, %q: want one content id for the same event, another for another", a[0].ID, b[0].ID, c[0].ID)
	}
}

func TestParseEnvelopeMalformed(t *testing.T) {
	many := make([]string, audit.MaxEventsPerEnvelope+1)
	for i := range many {
		many[i] = `{"id":"x","action":"pull"}`
	}
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"not JSON", `{"events":`, audit.ErrMalformed},
		{"not an object", `[1,2]`, audit.ErrMalformed},
		{"neither envelope", `{"foo":1}`, audit.ErrMalformed},
		{"both envelopes", `{"events":[],"message":{}}`, audit.ErrMalformed},
		{"events not a list", `{"events":{"id":"x"}}`, audit.ErrMalformed},
		{"event not an object", `{"events":["x"]}`, audit.ErrMalformed},
		{"wrong field type", `{"events":[{"id":1}]}`, audit.ErrMalformed},
		{"bad UTF-8", "{\"events\":[{\"id\":\"\xff\xfe\",\"action\":\"push\"}]}", audit.ErrMalformed},
		{"deep JSON", `{"events":[{"target":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}]}`, audit.ErrMalformed},
		{"too many events", distEnvelope(many...), audit.ErrTooManyEvents},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.ParseEnvelope([]byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Errorf("ParseEnvelope(%.60q) = %v, want %v", tc.body, err, tc.want)
			}
		})
	}
	// Brackets inside strings are no nesting.
	if _, err := audit.ParseEnvelope([]byte(`{"events":[{"id":"` + strings.Repeat(`[{\"`, 50) + `","action":"pull"}]}`)); err != nil {
		t.Errorf("brackets in a string: %v", err)
	}
	if evs, err := audit.ParseEnvelope([]byte(`{"events":[]}`)); err != nil || len(evs) != 0 {
		t.Errorf("empty envelope = %v, %v; want no events, no error", evs, err)
	}
}

// pubsub wraps a GCR payload as a Pub/Sub push does.
func pubsub(data string, id string) string {
	msg := map[string]any{"data": base64.StdEncoding.EncodeToString([]byte(data)), "attributes": map[string]string{}, "publishTime": "2026-12-01T10:00:00Z"}
	if id != "" {
		msg["messageId"], msg["message_id"] = id, id
	}
	b, _ := json.Marshal(map[string]any{"message": msg, "subscription": "projects/p/subscriptions/cip-audit"})
	return string(b)
}

// The original auditor's Pub/Sub rules: a payload is the action and the
// digest (host/path@sha256:…) and/or tag (host/path:tag); INSERT is a
// push, DELETE a deletion (always rejected); a payload naming neither
// digest nor tag, without an action or with another one is rejected; a
// body that does not parse is refused (400 here).
func TestParsePubSub(t *testing.T) {
	gcrA := "gcr.io/k8s-artifacts-prod/app@" + dA
	type row struct{ Action, Registry, Repository, Digest, Tag, Invalid string }
	for _, tc := range []struct {
		name, body string
		want       row
		err        error
	}{
		{"insert, digest only", pubsub(`{"action":"INSERT","digest":"`+gcrA+`"}`, "1"),
			row{"push", "gcr.io", "gcr.io/k8s-artifacts-prod/app", dA, "", ""}, nil},
		{"insert, digest and tag", pubsub(`{"action":"INSERT","digest":"`+gcrA+`","tag":"gcr.io/k8s-artifacts-prod/app:v1"}`, "2"),
			row{"push", "gcr.io", "gcr.io/k8s-artifacts-prod/app", dA, "v1", ""}, nil},
		{"registry with a port", pubsub(`{"action":"INSERT","digest":"127.0.0.1:5000/prod/app@`+dA+`","tag":"127.0.0.1:5000/prod/app:v1"}`, "3"),
			row{"push", "127.0.0.1:5000", "127.0.0.1:5000/prod/app", dA, "v1", ""}, nil},
		{"delete of a tag", pubsub(`{"action":"DELETE","tag":"gcr.io/k8s-artifacts-prod/app:v1"}`, "4"),
			row{"delete", "gcr.io", "gcr.io/k8s-artifacts-prod/app", "", "v1", ""}, nil},
		{"delete of a digest", pubsub(`{"action":"DELETE","digest":"`+gcrA+`"}`, "5"),
			row{"delete", "gcr.io", "gcr.io/k8s-artifacts-prod/app", dA, "", ""}, nil},
		{"missing digest and tag", pubsub(`{"action":"INSERT"}`, "6"),
			row{"push", "", "", "", "", "neither digest nor tag was specified"}, nil},
		{"empty payload", pubsub(`{}`, "7"),
			row{"", "", "", "", "", "neither digest nor tag was specified"}, nil},
		{"missing action", pubsub(`{"digest":"`+gcrA+`"}`, "8"),
			row{"", "gcr.io", "gcr.io/k8s-artifacts-prod/app", dA, "", "action not specified"}, nil},
		{"unknown action", pubsub(`{"action":"WOOF","digest":"`+gcrA+`"}`, "9"),
			row{"woof", "gcr.io", "gcr.io/k8s-artifacts-prod/app", dA, "", `unknown action "WOOF"`}, nil},
		{"digest without @", pubsub(`{"action":"INSERT","digest":"gcr.io/foo/bar"}`, "10"),
			row{"push", "", "", "", "", "want host/path@sha256"}, nil},
		{"short digest", pubsub(`{"action":"INSERT","digest":"gcr.io/foo/bar@sha256:000"}`, "11"),
			row{"push", "gcr.io", "gcr.io/foo/bar", "sha256:000", "", "invalid digest"}, nil},
		{"tag without :", pubsub(`{"action":"INSERT","tag":"gcr.io/foo/bar"}`, "12"),
			row{"push", "", "", "", "", "want host/path:tag"}, nil},
		{"digest and tag in two repositories", pubsub(`{"action":"INSERT","digest":"`+gcrA+`","tag":"gcr.io/other:v1"}`, "13"),
			row{"push", "gcr.io", "gcr.io/k8s-artifacts-prod/app", dA, "v1", "two repositories"}, nil},
		{"invalid base64", `{"message":{"data":"not base64!","messageId":"14"}}`, row{}, audit.ErrMalformed},
		{"url-safe base64", `{"message":{"data":"` + base64.URLEncoding.EncodeToString([]byte(`{"action":"INSERT","digest":"`+gcrA+`?>"}`)) + `","messageId":"15"}}`, row{}, audit.ErrMalformed},
		{"missing data", `{"message":{"messageId":"16"}}`, row{}, audit.ErrMalformed},
		{"empty data", `{"message":{"data":"","messageId":"17"}}`, row{}, audit.ErrMalformed},
		{"message not an object", `{"message":"hello"}`, row{}, audit.ErrMalformed},
		{"data not JSON", pubsub(`{`, "18"), row{}, audit.ErrMalformed},
		{"data field of the wrong type", pubsub(`{"action": 1}`, "19"), row{}, audit.ErrMalformed},
		{"data not UTF-8", pubsub("{\"action\":\"INSERT\",\"digest\":\"gcr.io/\xff@"+dA+"\"}", "20"), row{}, audit.ErrMalformed},
		{"data nested deep", pubsub(`{"action":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`, "21"), row{}, audit.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := audit.ParseEnvelope([]byte(tc.body))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseEnvelope = %v, %v; want %v", evs, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1", len(evs))
			}
			e := evs[0]
			got := row{e.Action, e.Registry, e.Repository, e.Digest, e.Tag, e.Invalid}
			if tc.want.Invalid != "" && strings.Contains(got.Invalid, tc.want.Invalid) {
				got.Invalid = tc.want.Invalid
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if e.Source != audit.SourcePubSub || e.OccurredAt != "2026-12-01T10:00:00Z" {
				t.Errorf("source %q, occurred %q", e.Source, e.OccurredAt)
			}
		})
	}
}

func TestPubSubIDs(t *testing.T) {
	data := `{"action":"INSERT","digest":"gcr.io/foo/bar@` + dA + `"}`
	evs, err := audit.ParseEnvelope([]byte(`{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(data)) + `","message_id":"77"}}`))
	if err != nil || evs[0].ID != "77" {
		t.Errorf("message_id spelling: %v, %v; want id 77", evs, err)
	}
	a, _ := audit.ParseEnvelope([]byte(pubsub(data, "")))
	b, _ := audit.ParseEnvelope([]byte(pubsub(data, "")))
	if !strings.HasPrefix(a[0].ID, "sha256:") || a[0].ID != b[0].ID {
		t.Errorf("ids without messageId: %q, %q; want one content id", a[0].ID, b[0].ID)
	}
}

// Pub/Sub payloads judged against manifests promoting into GCR.
func TestJudgePubSub(t *testing.T) {
	set, _ := loadSet(t, fmt.Sprintf(`registries:
- name: gcr.io/k8s-staging-foo
  src: true
- name: us.gcr.io/k8s-artifacts-prod/foo
images:
- name: app
  dmap:
    %q: ["v1"]
`, dA))
	p := audit.NewPolicy(set)
	db := openDB(t)
	for _, tc := range []struct {
		data    string
		verdict string
		reason  audit.Reason
	}{
		{`{"action":"INSERT","digest":"us.gcr.io/k8s-artifacts-prod/foo/app@` + dA + `","tag":"us.gcr.io/k8s-artifacts-prod/foo/app:v1"}`, audit.Verified, audit.Promoted},
		{`{"action":"INSERT","digest":"us.gcr.io/k8s-artifacts-prod/foo/app@` + dA + `"}`, audit.Verified, audit.Promoted},
		{`{"action":"INSERT","digest":"us.gcr.io/k8s-artifacts-prod/foo/app@` + dX + `"}`, audit.Rejected, audit.NotInManifest},
		{`{"action":"INSERT","digest":"us.gcr.io/k8s-artifacts-prod/foo/app@` + dB + `","tag":"us.gcr.io/k8s-artifacts-prod/foo/app:v1"}`, audit.Rejected, audit.TagMismatch},
		{`{"action":"INSERT","digest":"us.gcr.io/k8s-artifacts-prod/foo/other@` + dA + `"}`, audit.Rejected, audit.UnknownRepository},
		{`{"action":"DELETE","tag":"us.gcr.io/k8s-artifacts-prod/foo/app:v1"}`, audit.Rejected, audit.Deletion},
		{`{"action":"DELETE","digest":"us.gcr.io/k8s-artifacts-prod/foo/app@` + dA + `"}`, audit.Rejected, audit.Deletion},
		{`{"action":"INSERT","tag":"us.gcr.io/k8s-artifacts-prod/foo/app:v1"}`, audit.Rejected, audit.InvalidEvent},
		{`{"action":"INSERT"}`, audit.Rejected, audit.InvalidEvent},
		{`{"digest":"us.gcr.io/k8s-artifacts-prod/foo/app@` + dA + `"}`, audit.Rejected, audit.InvalidEvent},
	} {
		evs, err := audit.ParseEnvelope([]byte(pubsub(tc.data, "1")))
		if err != nil {
			t.Fatalf("%s: %v", tc.data, err)
		}
		v, err := p.Judge(context.Background(), db, evs[0])
		if err != nil {
			t.Fatal(err)
		}
		if v.Verdict != tc.verdict || v.Reason != tc.reason {
			t.Errorf("Judge(%s) = %s %s (%s), want %s %s", tc.data, v.Verdict, v.Reason, v.Detail, tc.verdict, tc.reason)
		}
	}
}
