package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// deploy/gitleaks.toml, run by the real gitleaks (built by .ci/run from
// github.com/zricethezav/gitleaks/v8), finds every freshly generated
// keygate secret in a file and none of the look-alikes beside them.
func TestGitleaksRulesFindKeygateSecrets(t *testing.T) {
	gitleaks := program(t, "gitleaks", "KEYGATE_TEST_GITLEAKS")
	var leaked []string
	for _, prefix := range []string{"cm_live_", "cm_test_", "csk_live_", "csk_test_", "kgadm_", "kgo_at_", "kgo_rt_", "kgo_ac_", "kgo_cs_"} {
		leaked = append(leaked, keygate.GenerateTokenSecret(prefix))
	}
	real := leaked[0]
	tail := real[len("cm_live_"):]
	lookAlikes := []string{
		"cm_prod_" + tail,                    // not an environment keygate has
		"cm_live_" + tail[:35],               // one character short
		"cm_live_" + tail + "x",              // one too many
		"xcm_live_" + tail,                   // glued to a longer word
		"cm_live_" + strings.Repeat("A", 36), // placeholder, no entropy
		"cm_live_" + tail[:20] + "-" + tail[21:],
		"kgo_xx_" + tail,
		"cm_live_…" + tail[32:], // a token's display hint
	}
	var file strings.Builder
	file.WriteString("# config someone committed by mistake\n")
	for i, s := range leaked {
		file.WriteString([]string{"TOKEN=", "export KEY=\"", "  X-Token: ", "curl -H 'Authorization: Bearer "}[i%4] + s + []string{"\n", "\"\n", "\n", "' https://api.example.com\n"}[i%4])
	}
	for _, s := range lookAlikes {
		file.WriteString("example: " + s + "\n")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "leak.env"), []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(gitleaks, "dir", "--no-banner", "--log-level", "error", "--config", "../../deploy/gitleaks.toml",
		"--report-format", "json", "--report-path", report, "--exit-code", "0", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitleaks: %v\n%s", err, out)
	}
	var findings []struct {
		RuleID string
		Secret string
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &findings); err != nil {
		t.Fatalf("gitleaks report: %v\n%s", err, b)
	}
	var found []string
	for _, f := range findings {
		found = append(found, f.Secret)
		if !strings.HasPrefix(f.RuleID, "keygate-") {
			t.Errorf("finding from rule %s", f.RuleID)
		}
	}
	sort.Strings(found)
	sort.Strings(leaked)
	if strings.Join(found, "\n") != strings.Join(leaked, "\n") {
		t.Errorf("gitleaks found:\n%s\nwant exactly the generated secrets:\n%s", strings.Join(found, "\n"), strings.Join(leaked, "\n"))
	}
	t.Logf("%d secrets found, %d look-alikes passed over", len(found), len(lookAlikes))
}
