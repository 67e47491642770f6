package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testserver"
	"github.com/switchboard/switchboard/loadtest"
)

// runBin runs the binary with args, bounded in time, and returns its
// stdout, stderr and whether it exited 0.
func runBin(t *testing.T, args ...string) (stdout, stderr string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testserver.Binary(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: timed out", args)
	}
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errOut.String(), err == nil
}

// TestLoadtestHTMLReportAndCompare: a connect run writes its JSON and HTML
// reports; `loadtest report` re-renders the JSON to the same page and
// prints the summary; `loadtest compare` prints ratios, differences and
// the parameters that differ, and fails only on bad input.
func TestLoadtestHTMLReportAndCompare(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }

	out, errOut, ok := runBin(t, "loadtest", "connect", "--url", srv.URL(), "--data-dir", srv.DataDir(),
		"--conns", "50", "--concurrency", "8", "--server-pid", strconv.Itoa(srv.PID()), "--quiet",
		"--json", path("a.json"), "--html", path("a.html"))
	if !ok {
		t.Fatalf("loadtest connect failed:\n%s\n%s", out, errOut)
	}
	page, err := os.ReadFile(path("a.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "switchboard loadtest connect", "upgrades succeeded", `aria-label="Latency distribution"`, "connect+upgrade"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("a.html lacks %q", want)
		}
	}
	for _, bad := range []string{`src="http`, "<script", "<link"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("a.html contains %q", bad)
		}
	}

	out, errOut, ok = runBin(t, "loadtest", "report", path("a.json"), "--html", path("b.html"))
	if !ok || !strings.Contains(out, "switchboard loadtest connect") || !strings.Contains(out, "upgrades succeeded") {
		t.Fatalf("loadtest report: ok %v\n%s\n%s", ok, out, errOut)
	}
	if again, err := os.ReadFile(path("b.html")); err != nil || !bytes.Equal(again, page) {
		t.Errorf("the page re-rendered from the JSON differs from the run's (%v)", err)
	}

	// B: twice the rate, three failures, other parameters.
	f, err := os.Open(path("a.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadtest.ReadReport(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i, fig := range b.Figures {
		switch fig.Name {
		case "upgrade rate":
			b.Figures[i].Value *= 2
		case "upgrades failed":
			b.Figures[i].Value = 3
		}
	}
	b.Params["conns"] = 100
	js, _ := json.Marshal(b)
	os.WriteFile(path("c.json"), js, 0o600)

	out, errOut, ok = runBin(t, "loadtest", "compare", path("a.json"), path("c.json"))
	if !ok {
		t.Fatalf("loadtest compare failed:\n%s\n%s", out, errOut)
	}
	for _, want := range []string{"* conns", "×2", "+3", "upgrades failed", "connect+upgrade", "p99"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(lineWith(out, "upgrade rate"), "×2") || !strings.Contains(lineWith(out, "upgrades failed"), "+3") {
		t.Errorf("ratio or difference on the wrong line:\n%s", out)
	}

	// Bad input, and only bad input, fails.
	os.WriteFile(path("empty.json"), []byte("{}"), 0o600)
	os.WriteFile(path("broken.json"), []byte(`{"scenario": "connect", `), 0o600)
	for _, args := range [][]string{
		{"loadtest", "compare", path("a.json")},
		{"loadtest", "compare", path("a.json"), path("c.json"), path("a.json")},
		{"loadtest", "compare", path("a.json"), path("missing.json")},
		{"loadtest", "compare", path("a.json"), path("empty.json")},
		{"loadtest", "report", path("broken.json")},
		{"loadtest", "report"},
		{"loadtest", "report", path("a.json"), "--html", filepath.Join(dir, "no", "such", "dir.html")},
	} {
		if out, errOut, ok := runBin(t, args...); ok {
			t.Errorf("%v succeeded:\n%s\n%s", args[1:], out, errOut)
		} else if strings.Contains(args[len(args)-1], "empty.json") && !strings.Contains(errOut, "not a loadtest report") {
			t.Errorf("%v: stderr %q, want it to say the file is not a report", args[1:], errOut)
		}
	}
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestLoadtestScenariosTakeHTML: every scenario has --html next to --json.
func TestLoadtestScenariosTakeHTML(t *testing.T) {
	for _, sc := range []string{"idle", "connect", "chat"} {
		out, errOut, _ := runBin(t, "loadtest", sc, "--help")
		if help := out + errOut; !strings.Contains(help, "-html") || !strings.Contains(help, "-json") {
			t.Errorf("loadtest %s --help lacks -html or -json:\n%s", sc, help)
		}
	}
}
