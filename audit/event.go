package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cipdev/cip/internal/apipath"
	"github.com/cipdev/cip/manifest"
)

// Sources: the envelope an event came in.
const (
	// SourceDistribution is a registry notification (distribution's
	// application/vnd.docker.distribution.events.v1+json envelope), as
	// docker-registry sends to its notifications.endpoints.
	SourceDistribution = "distribution"
	// SourcePubSub is a GCR / Artifact Registry change pushed by Pub/Sub
	// ({"message":{"data": base64 of {"action","digest","tag"}}}).
	SourcePubSub = "pubsub"
)

// Actions of a judged event.
const (
	ActionPush   = "push"
	ActionDelete = "delete"
)

// Why an event is not judged (Event.Ignored).
const (
	IgnoredPull = "pull" // reads change nothing
	IgnoredBlob = "blob" // a layer or config upload or mount: what matters is the manifest push that references it, judged on its own
)

// Bounds on what one request may carry.
const (
	// MaxEventsPerEnvelope bounds the work one request can ask for.
	// docker-registry 2.8 writes each event in a request of its own (the
	// end-to-end test sees one per envelope) and a Pub/Sub push carries one
	// message, so 100 is far above any real sender.
	MaxEventsPerEnvelope = 100
	// maxJSONDepth bounds nesting: a distribution envelope is 4 levels
	// deep (envelope, events, event, target), a Pub/Sub push 3 (envelope,
	// message, attributes).
	maxJSONDepth = 16
	// maxField bounds every string kept from an event: distribution caps
	// repository names at 255 characters and tags at 128, so anything
	// longer is invalid and kept only as a prefix, for the record.
	maxField = 512
)

// ErrMalformed marks a request body that is not a notification envelope
// (HTTP 400). ErrTooManyEvents marks an envelope with more than
// MaxEventsPerEnvelope events (HTTP 413).
var (
	ErrMalformed     = errors.New("malformed envelope")
	ErrTooManyEvents = errors.New("too many events in one envelope")
)

// Event is one registry change, normalised from either envelope.
type Event struct {
	Source     string // SourceDistribution or SourcePubSub
	ID         string // the sender's id; a sha256 of the event when it gave none
	Action     string // ActionPush, ActionDelete, or what the sender said
	Registry   string // host[:port]
	Repository string // host[:port]/path
	Digest     string
	Tag        string
	MediaType  string
	OccurredAt string // as the sender gave it
	// Ignored, when set, says why the event is not judged (IgnoredPull,
	// IgnoredBlob).
	Ignored string
	// Invalid, when set, says why the event cannot be judged; Judge
	// rejects it with InvalidEvent.
	Invalid string
}

// ParseEnvelope reads a request body holding either envelope, told apart
// by its top-level field ("events" or "message"). The body must be UTF-8
// JSON nested at most maxJSONDepth deep; errors wrap ErrMalformed or
// ErrTooManyEvents.
func ParseEnvelope(body []byte) ([]Event, error) {
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	_, isDist := top["events"]
	_, isPubSub := top["message"]
	switch {
	case isDist && isPubSub:
		return nil, fmt.Errorf("%w: both events and message: which envelope is it?", ErrMalformed)
	case isDist:
		return parseDistribution(top["events"])
	case isPubSub:
		ev, err := parsePubSub(top["message"])
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	}
	return nil, fmt.Errorf("%w: neither a distribution envelope (events) nor a Pub/Sub push (message)", ErrMalformed)
}

// checkJSON refuses what json.Unmarshal would accept silently or at a cost:
// invalid UTF-8 (decoded as U+FFFD, so a name would not be what was sent)
// and deep nesting.
func checkJSON(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxJSONDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// distEvent is the part of a distribution event cip reads
// (github.com/distribution/distribution notifications.Event).
type distEvent struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Action    string `json:"action"`
	Target    struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

func parseDistribution(raw json.RawMessage) ([]Event, error) {
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, fmt.Errorf("%w: events: %v", ErrMalformed, err)
	}
	if len(events) > MaxEventsPerEnvelope {
		return nil, fmt.Errorf("%w: %d events, at most %d", ErrTooManyEvents, len(events), MaxEventsPerEnvelope)
	}
	out := make([]Event, 0, len(events))
	for i, r := range events {
		var d distEvent
		if err := json.Unmarshal(r, &d); err != nil {
			return nil, fmt.Errorf("%w: events[%d]: %v", ErrMalformed, i, err)
		}
		out = append(out, distributionEvent(d, r))
	}
	return out, nil
}

func distributionEvent(d distEvent, raw []byte) Event {
	ev := Event{
		Source: SourceDistribution, ID: clip(d.ID), Action: clip(d.Action),
		Digest: clip(d.Target.Digest), Tag: clip(d.Target.Tag), MediaType: clip(d.Target.MediaType),
		OccurredAt: clip(d.Timestamp),
	}
	if ev.ID == "" {
		ev.ID = hashID(raw)
	}
	switch ev.Action {
	case "pull":
		ev.Ignored = IgnoredPull
		return ev
	case "mount":
		ev.Ignored = IgnoredBlob
		return ev
	}
	host := d.Request.Host
	var urlPath string
	if u, err := url.Parse(d.Target.URL); err == nil {
		urlPath = u.Path
		if host == "" {
			host = u.Host
		}
	}
	ev.Registry = clip(host)
	ev.Repository = clip(host + "/" + d.Target.Repository)
	if ev.Action == ActionPush && isBlob(urlPath, d.Target.MediaType) {
		ev.Ignored = IgnoredBlob
		return ev
	}
	switch {
	case ev.Action != ActionPush && ev.Action != ActionDelete:
		ev.Invalid = fmt.Sprintf("unknown action %q", ev.Action)
	case host == "":
		ev.Invalid = "the event names no registry host (request.host, target.url)"
	default:
		ev.Invalid = checkReference(host, d.Target.Repository, ev.Digest, ev.Tag)
	}
	if ev.Invalid == "" && ev.Action == ActionPush && ev.Digest == "" {
		ev.Invalid = "a push that names no digest"
	}
	return ev
}

// isBlob tells a blob event from a manifest event: by its URL
// (/v2/<name>/blobs/<digest>) when it has one, else by a media type no
// manifest has.
func isBlob(urlPath, mediaType string) bool {
	switch apipath.Kind(urlPath) {
	case "blob", "upload":
		return true
	case "manifest":
		return false
	}
	return mediaType == "application/octet-stream"
}

// checkReference returns why host/repository@digest:tag is no valid
// reference, or "".
func checkReference(host, repository, digest, tag string) string {
	if err := manifest.ValidateRegistryName(host); err != nil || strings.Contains(host, "/") {
		return fmt.Sprintf("registry host %q: not host[:port]", clip(host))
	}
	if err := manifest.ValidateImageName(repository); err != nil {
		return fmt.Sprintf("repository %q: %v", clip(repository), err)
	}
	if digest != "" {
		if err := manifest.ValidateDigest(digest); err != nil {
			return fmt.Sprintf("digest %q: %v", clip(digest), err)
		}
	}
	if tag != "" {
		if err := manifest.ValidateTag(tag); err != nil {
			return fmt.Sprintf("tag %q: %v", clip(tag), err)
		}
	}
	return ""
}

// pubsubMessage is a Pub/Sub push's message. Pub/Sub sends both spellings
// of the id and the publish time.
type pubsubMessage struct {
	Data         *string `json:"data"`
	MessageID    string  `json:"messageId"`
	MessageID2   string  `json:"message_id"`
	PublishTime  string  `json:"publishTime"`
	PublishTime2 string  `json:"publish_time"`
}

// gcrPayload is the message data GCR and Artifact Registry publish on the
// gcr topic: digest is host/path@sha256:…, tag host/path:tag.
type gcrPayload struct {
	Action string `json:"action"`
	Digest string `json:"digest"`
	Tag    string `json:"tag"`
}

func parsePubSub(raw json.RawMessage) (Event, error) {
	var m pubsubMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Event{}, fmt.Errorf("%w: message: %v", ErrMalformed, err)
	}
	if m.Data == nil || *m.Data == "" {
		return Event{}, fmt.Errorf("%w: message has no data", ErrMalformed)
	}
	data, err := base64.StdEncoding.DecodeString(*m.Data)
	if err != nil {
		return Event{}, fmt.Errorf("%w: message data is not base64: %v", ErrMalformed, err)
	}
	if err := checkJSON(data); err != nil {
		return Event{}, fmt.Errorf("message data: %w", err)
	}
	var p gcrPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return Event{}, fmt.Errorf("%w: message data: %v", ErrMalformed, err)
	}
	ev := Event{Source: SourcePubSub, ID: clip(first(m.MessageID, m.MessageID2)), OccurredAt: clip(first(m.PublishTime, m.PublishTime2))}
	if ev.ID == "" {
		ev.ID = hashID(data)
	}
	ev.Invalid = gcrEvent(&ev, p)
	return ev, nil
}

// gcrEvent fills ev from a GCR payload, with the original auditor's rules:
// a digest or a tag is required, INSERT is a push and DELETE a deletion,
// any other action is refused. It returns why the payload cannot be judged,
// or "".
func gcrEvent(ev *Event, p gcrPayload) string {
	switch p.Action {
	case "INSERT":
		ev.Action = ActionPush
	case "DELETE":
		ev.Action = ActionDelete
	default:
		ev.Action = clip(strings.ToLower(p.Action))
	}
	if p.Digest == "" && p.Tag == "" {
		return "neither digest nor tag was specified"
	}
	var path, tagPath string
	if p.Digest != "" {
		var d string
		var ok bool
		path, d, ok = strings.Cut(p.Digest, "@")
		if !ok || strings.Contains(d, "@") {
			return fmt.Sprintf("digest %q: want host/path@sha256:<hex>", clip(p.Digest))
		}
		ev.Digest = clip(d)
	}
	if p.Tag != "" {
		i := strings.LastIndexByte(p.Tag, ':')
		if i < 0 || i < strings.LastIndexByte(p.Tag, '/') {
			return fmt.Sprintf("tag %q: want host/path:tag", clip(p.Tag))
		}
		tagPath, ev.Tag = p.Tag[:i], clip(p.Tag[i+1:])
		if path == "" {
			path = tagPath
		}
	}
	host, repo, _ := strings.Cut(path, "/")
	ev.Registry, ev.Repository = clip(host), clip(path)
	switch {
	case tagPath != "" && tagPath != path:
		return fmt.Sprintf("digest %q and tag %q name two repositories", clip(p.Digest), clip(p.Tag))
	case p.Action == "":
		return "action not specified"
	case ev.Action != ActionPush && ev.Action != ActionDelete:
		return fmt.Sprintf("unknown action %q", clip(p.Action))
	}
	return checkReference(host, repo, ev.Digest, ev.Tag)
}

// clip bounds a string taken from a request to maxField bytes, cut at a
// rune boundary.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	s = s[:maxField]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// hashID names an event that came without an id by its content, so that
// a redelivery of it is still counted once.
func hashID(raw []byte) string {
	sum := sha256.Sum256(bytes.TrimSpace(raw))
	return "sha256:" + hex.EncodeToString(sum[:])
}
