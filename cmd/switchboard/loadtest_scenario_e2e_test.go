package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/testserver"
	"github.com/switchboard/switchboard/loadtest"
)

// TestLoadtestScenarioFiles: `loadtest run FILE` runs the scenario the
// file names with the file's flags, the command line overriding them; a
// key that is not a flag of the scenario is refused by name. The
// reconnect storm runs through the binary too.
func TestLoadtestScenarioFiles(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir := t.TempDir()
	file := filepath.Join(dir, "chat.yaml")
	os.WriteFile(file, []byte("scenario: chat\npairs: 10\nrate: 200\nduration: 1s\nreceipts: true\nsize-dist: uniform:20-40\n"), 0o644)
	report := filepath.Join(dir, "chat.json")
	common := []string{"--url", srv.URL(), "--data-dir", srv.DataDir(), "--server-pid", strconv.Itoa(srv.PID()), "--quiet"}
	out, errOut, ok := runBin(t, append([]string{"loadtest", "run", file, "--pairs", "5", "--json", report}, common...)...)
	if !ok {
		t.Fatalf("loadtest run failed:\n%s\n%s", out, errOut)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Scenario != "chat" || rep.Params["pairs"] != float64(5) || rep.Params["rate"] != float64(200) ||
		rep.Params["receipts"] != true || rep.Params["size_dist"] != "uniform:20-40" {
		t.Fatalf("params %v: want the file's, with pairs from the command line", rep.Params)
	}
	if v, _ := rep.Figure("read receipts back at the senders"); v != 200 {
		t.Errorf("receipts back %v, want 200", v)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("scenario: idle\nconns: 5\npairs: 3\n"), 0o644)
	if _, errOut, ok := runBin(t, append([]string{"loadtest", "run", bad}, common...)...); ok || !strings.Contains(errOut, `"pairs" is not a flag of this scenario`) {
		t.Errorf("a key that is not a flag: ok=%v %s", ok, errOut)
	}

	out, errOut, ok = runBin(t, append([]string{"loadtest", "reconnect", "--conns", "100", "--hold", "100ms"}, common...)...)
	if !ok || !strings.Contains(out, "time until all back and synced") || !strings.Contains(out, "drop→synced") {
		t.Fatalf("loadtest reconnect:\n%s\n%s", out, errOut)
	}
}
