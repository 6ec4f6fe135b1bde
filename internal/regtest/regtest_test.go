package regtest

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// A manifest PUT cut mid-body (the client went away) stores nothing: a
// real registry checks the body, go-containerregistry's would keep the part
// it read.
func TestCutManifestPutStoresNothing(t *testing.T) {
	reg := New(t)
	conn, err := net.Dial("tcp", reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"schemaVersion":2`
	fmt.Fprintf(conn, "PUT /v2/x/manifests/v1 HTTP/1.1\r\nHost: %s\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 500\r\n\r\n%s", reg.Host, body)
	time.Sleep(50 * time.Millisecond)
	conn.Close()
	// The server notices the cut read; give it a moment.
	for i := 0; i < 50 && reg.Count("PUT manifest") == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	resp, err := http.Get("http://" + reg.Host + "/v2/x/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET the tag of a cut PUT = %d, want 404 (nothing stored)", resp.StatusCode)
	}
}
