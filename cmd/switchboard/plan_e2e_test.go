package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/testserver"
	"github.com/switchboard/switchboard/plan"
)

// runPlan runs `switchboard plan args...` and returns its stdout, stderr
// and exit code.
func runPlan(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testserver.Binary(t), append([]string{"plan"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestPlanCompare: `plan --compare` reproduces the design's 1,667 gateways
// next to the measured plan, in JSON on stdout and in --json FILE alike,
// and as a table.
func TestPlanCompare(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plan.json")
	out, errOut, code := runPlan(t, "--compare", "--format", "json", "--json", file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	doc, err := plan.ReadJSON(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Plans) != 2 || doc.Plans[0].Label != "design" || doc.Plans[1].Label != "measured" {
		t.Fatalf("plans: %d", len(doc.Plans))
	}
	design, _ := doc.Plans[0].Tier(plan.TierGateways)
	measured, _ := doc.Plans[1].Tier(plan.TierGateways)
	if design.Count != 1667 || measured.Count != 58 {
		t.Errorf("gateways: design %v, measured %v; want 1,667 and 58", design.Count, measured.Count)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := plan.ReadJSON(bytes.NewReader(b))
	if err != nil || !reflect.DeepEqual(fromFile, doc) {
		t.Errorf("--json FILE differs from stdout (%v)", err)
	}

	text, _, code := runPlan(t, "--compare")
	if code != 0 || !strings.Contains(text, "design         measured") || !strings.Contains(text, "= ⌈peak_conns ÷ conns_per_box_planned⌉") {
		t.Errorf("exit %d, text:\n%s", code, text)
	}
}

// TestPlanInputs: an input file, a load-test report and flags, in that
// order of precedence, each named as the basis of what it set.
func TestPlanInputs(t *testing.T) {
	dir := t.TempDir()
	inputs := filepath.Join(dir, "inputs.yaml")
	os.WriteFile(inputs, []byte("dau: 50000000\nonline_share: 0.3\nmsgs_per_core: 1000\n"), 0o600)
	report, err := filepath.Abs("../../plan/testdata/chat-max.json")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runPlan(t, "--inputs", inputs, "--from-loadtest", report, "--online-share", "0.2", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	doc, err := plan.ReadJSON(strings.NewReader(out))
	if err != nil || len(doc.Plans) != 1 {
		t.Fatalf("%v %d", err, len(doc.Plans))
	}
	got := map[string]plan.Input{}
	for _, in := range doc.Plans[0].Inputs {
		got[in.Key] = in
	}
	for key, want := range map[string]struct {
		v     float64
		basis string
	}{
		"dau":           {5e7, "given: " + inputs},
		"online_share":  {0.2, "given: --online-share"},
		"msgs_per_core": {90130 / 1.5, "chat-max.json"},
		"msg_bytes":     {100, "assumed:"},
	} {
		if in := got[key]; in.Value != want.v || !strings.Contains(in.Basis, want.basis) {
			t.Errorf("%s = %v (%s), want %v (%s)", key, in.Value, in.Basis, want.v, want.basis)
		}
	}
	if c, _ := doc.Plans[0].Value("peak_conns"); c != 1e7 {
		t.Errorf("peak_conns = %v, want 50M × 0.2", c)
	}
}

func TestPlanErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("dua: 5\n"), 0o600)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--dau", "-1", "--utilization", "2"}, []string{"dau = -1: want more than 0", "utilization = 2: want a fraction above 0, at most 1"}},
		{[]string{"--dau", "many"}, []string{`invalid value "many" for flag -dau: want a number`}},
		{[]string{"--inputs", typo}, []string{"typo.yaml", "dua"}},
		{[]string{"--from-loadtest", filepath.Join(dir, "missing.json")}, []string{"missing.json"}},
		{[]string{"--format", "xml"}, []string{`--format "xml": want text or json`}},
		{[]string{"extra"}, []string{`unexpected argument "extra"`}},
	} {
		out, errOut, code := runPlan(t, c.args...)
		if code == 0 || out != "" {
			t.Errorf("%q: exit %d, stdout %q", c.args, code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%q: stderr %q lacks %q", c.args, errOut, w)
			}
		}
	}
}

// TestPlanHelp: --help explains every input flag, with its default and
// basis, and exits 0.
func TestPlanHelp(t *testing.T) {
	_, help, code := runPlan(t, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, f := range plan.Fields() {
		if !strings.Contains(help, "--"+strings.ReplaceAll(f.Key, "_", "-")+" (default ") || !strings.Contains(help, f.Help) || !strings.Contains(help, f.Basis) {
			t.Errorf("--help does not explain %s", f.Key)
		}
	}
	for _, flag := range []string{"--inputs FILE", "--from-loadtest FILE", "--compare", "--format", "--json FILE"} {
		if !strings.Contains(help, flag) {
			t.Errorf("--help does not explain %s", flag)
		}
	}
}
