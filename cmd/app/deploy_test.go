package app

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"
)

// TestDeployExample keeps deploy/audit-serve.yaml true to cip: the
// container runs `cip audit serve` with flags cip has, listens on the port
// the container and the Service name, and probes paths the server serves.
func TestDeployExample(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/audit-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Name    string   `json:"name"`
		Command []string `json:"command"`
		Args    []string `json:"args"`
		Ports   []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		} `json:"ports"`
		ReadinessProbe, LivenessProbe *struct {
			HTTPGet struct {
				Path string `json:"path"`
				Port string `json:"port"`
			} `json:"httpGet"`
		}
	}
	var cip *container
	var servicePort string
	kinds := map[string]int{}
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var obj struct {
			Kind string `json:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []container `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
				Ports []struct {
					TargetPort string `json:"targetPort"`
				} `json:"ports"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("deploy/audit-serve.yaml: %v", err)
		}
		kinds[obj.Kind]++
		for i, c := range obj.Spec.Template.Spec.Containers {
			if c.Name == "cip" {
				cip = &obj.Spec.Template.Spec.Containers[i]
			}
		}
		if obj.Kind == "Service" && len(obj.Spec.Ports) > 0 {
			servicePort = obj.Spec.Ports[0].TargetPort
		}
	}
	if kinds["Deployment"] != 1 || kinds["Service"] != 1 || cip == nil {
		t.Fatalf("want one Deployment with a cip container and one Service; got %v", kinds)
	}
	// The flags: global ones before "audit serve", serve's after.
	app := newApp("cip", io.Discard, io.Discard)
	serve := subcommand(app.Command("audit"), "serve")
	has := func(flags []cli.Flag, name string) bool {
		for _, f := range flags {
			for _, n := range f.Names() {
				if n == name {
					return true
				}
			}
		}
		return false
	}
	flags := app.Flags
	var listen string
	for i, a := range cip.Args {
		if a == "audit" && i+1 < len(cip.Args) && cip.Args[i+1] == "serve" {
			flags = nil
			continue
		}
		if a == "serve" && flags == nil {
			flags = serve.Flags
			continue
		}
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") || !has(flags, name) {
			t.Errorf("container arg %q is not a flag of cip audit serve (or cip)", a)
		}
		if name == "listen" {
			listen = value
		}
	}
	if !strings.Contains(strings.Join(cip.Args, " "), " audit serve ") {
		t.Errorf("the container does not run cip audit serve: %q", cip.Args)
	}
	if len(cip.Ports) != 1 || !strings.HasSuffix(listen, ":"+strconv.Itoa(cip.Ports[0].ContainerPort)) || servicePort != cip.Ports[0].Name {
		t.Errorf("--listen %q, container ports %+v, service targetPort %q: want one port, the same everywhere", listen, cip.Ports, servicePort)
	}
	if cip.ReadinessProbe == nil || cip.ReadinessProbe.HTTPGet.Path != "/readyz" || cip.LivenessProbe == nil || cip.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: want readiness /readyz and liveness /healthz")
	}
}
