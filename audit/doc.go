// Package audit checks production registries against the promoter
// manifests, as the original promoter's cip-auditor did: every change to a
// destination registry must be something a manifest promotes.
//
// A Policy is built from a loaded manifest set: per destination repository
// (destination registry / image), the digests and the tags each carries.
// Judge decides one registry event:
//
//   - VERIFIED promoted: a manifest promotes the digest into the
//     repository, and the tag (if any) is one it gives that digest;
//   - VERIFIED child: the digest is a child, however nested, of an index
//     promoted there (the inventory's manifest_children say so; an index's
//     children are pushed before it, so they are verified through it);
//   - VERIFIED referrer: a referrer (signature, attestation, SBOM) of a
//     digest that belongs there, or of such a referrer, up to
//     sync.MaxReferrerDepth levels: by its tag (cosign's sha256-<hex>.sig,
//     .att, .sbom, or the OCI referrers tag sha256-<hex>) or by what the
//     inventory records of its subject (the referrers rows, however found,
//     and the manifest's own subject field);
//   - REJECTED tag-mismatch: a tag the manifests put on another digest (a
//     moved tag), or a tag no manifest gives the digest;
//   - REJECTED not-in-manifest: a digest no manifest promotes into the
//     repository;
//   - REJECTED unknown-repository: a repository no manifest promotes into;
//   - REJECTED deletion: every deletion (promotion only adds);
//   - REJECTED invalid-event: an event that cannot be judged.
//
// Pulls and blob uploads are not judged: a blob matters only through the
// manifest that references it, whose push is judged.
//
// The walk from a digest up to what accounts for it (its indexes and its
// subjects) is Policy.account, bounded in depth and in digests. Anyone who
// can push may attach a referrer to a promoted digest: it is accounted for
// by its subject, as a cosign tag is; signatures are not checked here.
//
// Scan (`cip audit`) applies the same rules after the fact to what the
// inventory holds under the destination registries, and adds what is
// missing: a promoted digest or tag that is not there, reported as a
// deletion when the tag history saw it removed.
//
// Server (`cip audit serve`) receives registry notifications over HTTP:
// distribution's envelope (application/vnd.docker.distribution.events.v1+json,
// as docker-registry sends to its notifications.endpoints) and the GCR /
// Artifact Registry Pub/Sub push ({"message":{"data": base64 of
// {"action":"INSERT"|"DELETE","digest":…,"tag":…}}}), both on POST /events.
// A pushed manifest the inventory does not hold (an OCI 1.1 referrer
// pushed by digest through the referrers API arrives untagged) is read
// from its repository when ServerOptions.Read is set, to see its subject:
// only from destination repositories, at most three reads per event and
// within liveReadTime per request, each checked against the digest asked
// for; a failed read is noted in the verdict, never waited on.
// Each judged event is logged (log/slog), recorded in the inventory's
// audit_events table once per event id, and counted on /metrics; a
// redelivered event is counted once. Requests need the bearer token; bodies
// are capped at MaxBodyBytes, envelopes at MaxEventsPerEnvelope events, JSON
// nesting and every field kept from a request are bounded; malformed bodies
// are answered 400. The manifests are polled and reloaded when they change
// (or on Reload, which cip calls on SIGHUP), validated first: an invalid
// change keeps the last good set.
package audit
