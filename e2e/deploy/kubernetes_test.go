package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/internal/testenv"
)

// deploy/kubernetes/keygate.yaml holds together: every kind the task of
// running keygate needs is there, the probes hit /readyz and /healthz on
// the admin port, the Deployment reads the database URL from the Secret
// and mounts the ConfigMap, whose keygate.yaml loads, and the PDB, HPA,
// Service and NetworkPolicy select the Deployment's pods. The schema
// validation is TestKubernetesManifestsValidateAgainstTheSchemas.
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

// kubernetesVersion is the release whose schemas the manifests are
// checked against: .ci/run generates them from that release's OpenAPI
// document (e2e/deploy/kubeschema).
const kubernetesVersion = "1.37.2"

// deploy/kubernetes/ is valid for the Kubernetes API, checked by the real
// kubeconform in strict mode (unknown fields refused) against the schemas
// of kubernetesVersion; and the same check refuses a manifest with a
// misspelled field and a port given by name where a number is required.
func TestKubernetesManifestsValidateAgainstTheSchemas(t *testing.T) {
	kubeconform := program(t, "kubeconform", "KEYGATE_TEST_KUBECONFORM")
	schemas := os.Getenv("KEYGATE_TEST_KUBERNETES_SCHEMAS")
	if schemas == "" {
		testenv.Missing(t, "no Kubernetes JSON schemas (set KEYGATE_TEST_KUBERNETES_SCHEMAS to the output of e2e/deploy/kubeschema)")
	}
	validate := func(paths ...string) (string, error) {
		args := append([]string{"-strict", "-summary", "-schema-location", schemas, "-kubernetes-version", kubernetesVersion}, paths...)
		out, err := exec.Command(kubeconform, args...).CombinedOutput()
		return string(out), err
	}
	out, err := validate("../../deploy/kubernetes/")
	if err != nil || !strings.Contains(out, "7 resources found in 1 file - Valid: 7, Invalid: 0, Errors: 0, Skipped: 0") {
		t.Fatalf("kubeconform: %v\n%s", err, out)
	}

	raw, err := os.ReadFile("../../deploy/kubernetes/keygate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), "  replicas: 3\n", "  replica: 3\n", 1)
	bad = strings.Replace(bad, "containerPort: 8090", `containerPort: "admin"`, 1)
	if bad == string(raw) || strings.Count(bad, "replica: 3") != 1 || !strings.Contains(bad, `containerPort: "admin"`) {
		t.Fatal("the manifest no longer has the lines this test breaks; update the test")
	}
	path := t.TempDir() + "/broken.yaml"
	writeText(t, path, bad)
	out, err = validate(path)
	if err == nil || !strings.Contains(out, "additional properties 'replica' not allowed") || !strings.Contains(out, "containerPort': got string, want integer") {
		t.Errorf("kubeconform accepted or misreported a broken Deployment: %v\n%s", err, out)
	}
}
