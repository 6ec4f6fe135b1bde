package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RealmHost returns the host of a bearer challenge's token realm when it is
// another host than the registry's (registryHost is host[:port]; ports are
// not compared), and "" otherwise: a basic challenge, no realm, or a realm
// on the registry's own host. The token protocol lets a registry send
// clients, and their credentials, to any token service; cip follows it (Docker
// Hub's is auth.docker.io), and says so once per registry.
func RealmHost(registryHost string, ch *transport.Challenge) string {
	if ch == nil || !strings.EqualFold(ch.Scheme, "bearer") {
		return ""
	}
	realm := ch.Parameters["realm"]
	if realm == "" {
		return ""
	}
	u, err := url.Parse(realm)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	reg := registryHost
	if h, _, err := net.SplitHostPort(registryHost); err == nil {
		reg = h
	}
	if strings.EqualFold(u.Hostname(), reg) {
		return ""
	}
	return u.Hostname()
}

// checkRealm warns, once per registry, when ch's realm is on another host.
func (c *Client) checkRealm(registryHost string, ch *transport.Challenge) {
	realm := RealmHost(registryHost, ch)
	if realm == "" {
		return
	}
	if _, warned := c.realmWarned.LoadOrStore(registryHost, true); warned {
		return
	}
	msg := fmt.Sprintf("registry %s sends clients to a token service on another host, %s: cip follows it, and sends it the credentials it has for %s", registryHost, realm, registryHost)
	if c.tr.log != nil {
		c.tr.log.LogAttrs(context.Background(), slog.LevelWarn, "token realm on another host", slog.String("host", registryHost), slog.String("realm", realm))
	}
	if c.warn != nil {
		c.warn(msg)
	}
}
