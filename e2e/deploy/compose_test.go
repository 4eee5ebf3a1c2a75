package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate/config"
)

// deploy/compose.yaml holds together without an engine (none runs in CI):
// every service it depends on exists, every file it mounts is in the
// repository, the keygate config it mounts loads, every keygate instance
// gets the same config and database, and every host nginx proxies to is a
// service of the file.
func TestComposeStackReferences(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			DependsOn   yaml.Node         `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var keygates []string
	for name, svc := range file.Services {
		if svc.Image == "" {
			t.Errorf("service %s has no image", name)
		}
		for _, dep := range dependencies(&svc.DependsOn) {
			if _, ok := file.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			}
		}
		for _, v := range svc.Volumes {
			source := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(source, "./") {
				if _, err := os.Stat(filepath.Join("../../deploy", source)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, source, err)
				}
			} else if _, ok := file.Volumes[source]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", name, source)
			}
		}
		if strings.HasPrefix(name, "keygate-") {
			keygates = append(keygates, name)
			if strings.Join(svc.Command, " ") != "serve" || !strings.HasPrefix(svc.Environment[config.DatabaseURLEnv], "postgres://") ||
				len(svc.Volumes) != 1 || svc.Volumes[0] != "./compose/keygate.yaml:/etc/keygate/keygate.yaml:ro" {
				t.Errorf("%s is not like the other instances: %+v", name, svc)
			}
		}
	}
	sort.Strings(keygates)
	if strings.Join(keygates, " ") != "keygate-1 keygate-2 keygate-3" {
		t.Errorf("keygate instances: %v", keygates)
	}
	for _, want := range []string{"postgres", "redis", "nginx", "demo-upstream"} {
		if _, ok := file.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}

	cfg, err := config.Load("../../deploy/compose/keygate.yaml")
	if err != nil {
		t.Fatalf("the instances' config: %v", err)
	}
	if cfg.RateLimiter.Backend != "redis" || !strings.Contains(cfg.RateLimiter.RedisURL, "//redis:") {
		t.Errorf("instances do not share Redis: %+v", cfg.RateLimiter)
	}
	for _, api := range cfg.APIs() {
		if !strings.HasPrefix(api.Upstream, "http://demo-upstream:") {
			t.Errorf("API %s goes to %s, not the demo upstream", api.Name, api.Upstream)
		}
	}

	nginx, err := os.ReadFile("../../deploy/compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	servers := regexp.MustCompile(`(?m)^\s*server ([a-z0-9-]+):\d+`).FindAllStringSubmatch(string(nginx), -1)
	if len(servers) < 7 {
		t.Fatalf("nginx.conf names %d upstream servers", len(servers))
	}
	for _, m := range servers {
		if _, ok := file.Services[m[1]]; !ok {
			t.Errorf("nginx.conf proxies to %s, which is not a service", m[1])
		}
	}
}

// dependencies reads depends_on in either form: a list, or a map of
// service to condition.
func dependencies(n *yaml.Node) []string {
	var names []string
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			names = append(names, c.Value)
		}
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			names = append(names, n.Content[i].Value)
		}
	}
	return names
}
