package audit_test

import (
	"context"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/cipdev/cip/audit"
)

// FuzzParseEnvelope: no body makes the parsers panic; a body they accept
// yields bounded, identified events that judging can take; everything else
// is ErrMalformed or ErrTooManyEvents (a 400 or a 413, never a 500).
func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(distEnvelope(distEvent("e1", "push", "prod/app", dA, "v1", "manifests"), distEvent("e2", "pull", "prod/app", dA, "", "blobs"))))
	f.Add([]byte(distEnvelope(distEvent("e3", "delete", "prod/app", dA, "", "manifests"))))
	f.Add([]byte(pubsub(`{"action":"INSERT","digest":"gcr.io/foo/bar@`+dA+`","tag":"gcr.io/foo/bar:1.0"}`, "1")))
	f.Add([]byte(pubsub(`{"action":"DELETE","tag":"127.0.0.1:5000/foo:1"}`, "")))
	f.Add([]byte(`{"message":{"data":"e30="}}`))
	f.Add([]byte(`{"events":[{"id":"x","action":"push","target":{"repository":"a","digest":"sha256:00","url":"http://h/v2/a/manifests/x"}}]}`))
	f.Add([]byte(`{"events":[],"message":{}}`))
	f.Add([]byte("{\"events\":[\"\xff\"]}"))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`))
	set, _ := loadSet(f, fixture)
	p := audit.NewPolicy(set)
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := audit.ParseEnvelope(body)
		if err != nil {
			if !errors.Is(err, audit.ErrMalformed) && !errors.Is(err, audit.ErrTooManyEvents) {
				t.Fatalf("ParseEnvelope error %v is neither ErrMalformed nor ErrTooManyEvents", err)
			}
			return
		}
		if len(evs) > audit.MaxEventsPerEnvelope {
			t.Fatalf("%d events accepted, more than %d", len(evs), audit.MaxEventsPerEnvelope)
		}
		for _, ev := range evs {
			if ev.Source == "" || ev.ID == "" {
				t.Fatalf("event without source or id: %+v", ev)
			}
			for _, s := range []string{ev.ID, ev.Action, ev.Registry, ev.Repository, ev.Digest, ev.Tag, ev.MediaType, ev.OccurredAt} {
				if len(s) > 512 || !utf8.ValidString(s) {
					t.Fatalf("unbounded or invalid field %q", s)
				}
			}
			if ev.Ignored != "" {
				continue
			}
			v, err := p.Judge(context.Background(), noParents{}, ev)
			if err != nil {
				t.Fatal(err)
			}
			if v.Verdict != audit.Verified && v.Verdict != audit.Rejected {
				t.Fatalf("verdict %q", v.Verdict)
			}
			if v.Verdict == audit.Verified && (ev.Invalid != "" || ev.Action != audit.ActionPush) {
				t.Fatalf("verified an invalid event or a non-push: %+v", v)
			}
		}
	})
}
