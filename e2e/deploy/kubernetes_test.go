package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keygate/keygate/config"
)

// deploy/kubernetes/keygate.yaml holds together: every kind the task of
// running keygate needs is there, the probes hit /readyz and /healthz on
// the admin port, the Deployment reads the database URL from the Secret
// and mounts the ConfigMap, whose keygate.yaml loads, and the PDB, HPA,
// Service and NetworkPolicy select the Deployment's pods. This is not a
// schema validation: no Kubernetes JSON schemas are reachable offline for
// kubeconform (docs/deployment.md#kubernetes).
func TestKubernetesManifests(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/kubernetes/keygate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("keygate.yaml: %v", err)
		}
		docs[d["kind"].(string)] = d
	}
	for _, kind := range []string{"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} {
		if docs[kind] == nil {
			t.Errorf("no %s", kind)
		}
	}
	get := func(v any, path ...any) any {
		for _, p := range path {
			switch k := p.(type) {
			case string:
				m, _ := v.(map[string]any)
				v = m[k]
			case int:
				l, _ := v.([]any)
				if k >= len(l) {
					return nil
				}
				v = l[k]
			}
		}
		return v
	}
	podLabels := get(docs["Deployment"], "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(selector any) bool {
		m, _ := selector.(map[string]any)
		for k, v := range m {
			if podLabels[k] != v {
				return false
			}
		}
		return len(m) > 0
	}
	for kind, sel := range map[string]any{
		"Deployment":          get(docs["Deployment"], "spec", "selector", "matchLabels"),
		"Service":             get(docs["Service"], "spec", "selector"),
		"PodDisruptionBudget": get(docs["PodDisruptionBudget"], "spec", "selector", "matchLabels"),
		"NetworkPolicy":       get(docs["NetworkPolicy"], "spec", "podSelector", "matchLabels"),
	} {
		if !matches(sel) {
			t.Errorf("%s does not select keygate's pods: %v", kind, sel)
		}
	}
	if get(docs["HorizontalPodAutoscaler"], "spec", "scaleTargetRef", "name") != get(docs["Deployment"], "metadata", "name") {
		t.Errorf("HPA scales something else")
	}
	c := get(docs["Deployment"], "spec", "template", "spec", "containers", 0)
	if get(c, "readinessProbe", "httpGet", "path") != "/readyz" || get(c, "readinessProbe", "httpGet", "port") != "admin" ||
		get(c, "livenessProbe", "httpGet", "path") != "/healthz" || get(c, "livenessProbe", "httpGet", "port") != "admin" {
		t.Errorf("probes: %v %v", get(c, "readinessProbe"), get(c, "livenessProbe"))
	}
	if get(c, "env", 0, "name") != config.DatabaseURLEnv || get(c, "env", 0, "valueFrom", "secretKeyRef", "name") != get(docs["Secret"], "metadata", "name") {
		t.Errorf("database URL not from the Secret: %v", get(c, "env"))
	}
	if get(docs["Deployment"], "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Errorf("pods may run as root")
	}
	cm := get(docs["ConfigMap"], "data", "keygate.yaml").(string)
	dir := t.TempDir()
	writeText(t, dir+"/keygate.yaml", cm)
	if _, err := config.Load(dir + "/keygate.yaml"); err != nil {
		t.Errorf("the ConfigMap's keygate.yaml: %v", err)
	}
	if get(docs["Deployment"], "spec", "template", "spec", "volumes", 0, "configMap", "name") != get(docs["ConfigMap"], "metadata", "name") {
		t.Errorf("the Deployment does not mount the ConfigMap")
	}
}
