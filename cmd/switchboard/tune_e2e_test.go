package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/testserver"
	"github.com/switchboard/switchboard/tuning/tuningtest"
)

// runTune runs `switchboard tune ARGS` and returns its stdout, stderr and
// exit status.
func runTune(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testserver.Binary(t), append([]string{"tune"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// smallBox writes a fake /proc tree of a box with 1 GiB of memory (room for
// about 185,000 idle connections) and high kernel limits, and returns its
// root.
func smallBox(t *testing.T) string {
	return tuningtest.Tree{
		"proc/meminfo":       "MemTotal: 1048576 kB\n",
		"fs.nr_open":         "1048576\n",
		"fs.file-max":        "9223372036854775807\n",
		"fs.file-nr":         "100 0 9223372036854775807\n",
		"net.core.somaxconn": "4096\n",
		"net.ipv4.tcp_mem":   "100 200 300\n",
	}.Root(t)
}

// TestTuneCheck: exit status 0 when the connections fit, 1 naming the
// limit when they do not, 2 for a usage error; --json carries the verdict.
func TestTuneCheck(t *testing.T) {
	root := smallBox(t)
	out, errOut, code := runTune(t, "check", "--root", root, "--conns", "1000")
	if code != 0 || !strings.Contains(out, "reachable: 1,000 connections fit") || errOut != "" {
		t.Fatalf("1,000 connections: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, col := range []string{"SETTING", "CURRENT", "NEEDED", "STATUS", "WHY / HOW", "memory for 1,000 idle connections"} {
		if !strings.Contains(out, col) {
			t.Errorf("output lacks %q", col)
		}
	}

	// Ten million in processes of a thousand each: only memory stops them
	// (unless this machine's own hard limit is below 2,000 files).
	args := []string{"check", "--root", root, "--conns", "10000000", "--processes", "10000"}
	out, errOut, code = runTune(t, args...)
	if code != 1 || !strings.Contains(errOut, "not reachable") || !strings.Contains(errOut, "memory (MemTotal) = 1.00 GiB (allows 185,") {
		t.Fatalf("ten million: exit %d\nstderr: %s\nstdout:\n%s", code, errOut, out)
	}
	out, _, code = runTune(t, append(args, "--json")...)
	var r struct {
		Reachable bool     `json:"reachable"`
		StoppedBy []string `json:"stopped_by"`
		Capacity  int64    `json:"capacity"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || r.Reachable || r.Capacity == 0 ||
		len(r.StoppedBy) == 0 || r.StoppedBy[len(r.StoppedBy)-1] != "memory (MemTotal)" {
		t.Fatalf("--json: exit %d, %+v %v\n%s", code, r, err, out)
	}

	for _, bad := range [][]string{{"check", "--conns", "x"}, {"check", "extra"}, {"check", "--conns", "0"}, {"apply"}, {"frobnicate"}, {}} {
		if _, errOut, code := runTune(t, bad...); code != 2 || errOut == "" {
			t.Errorf("tune %q: exit %d, stderr %q; want 2 and a message", bad, code, errOut)
		}
	}
}

// TestTuneHelp: --help explains every flag and exits 0.
func TestTuneHelp(t *testing.T) {
	for sub, flags := range map[string][]string{
		"check": {"-conns", "-processes", "-root", "-json", "-kernel-kib-per-conn", "-gateway-kib-per-conn", "-ping-interval", "Exit status"},
		"apply": {"-conns", "-processes", "-root", "-write", "-unit", "-user", "dry run"},
	} {
		out, errOut, code := runTune(t, sub, "--help")
		if code != 0 {
			t.Errorf("%s --help: exit %d", sub, code)
		}
		for _, f := range flags {
			if !strings.Contains(out+errOut, f) {
				t.Errorf("%s --help lacks %s", sub, f)
			}
		}
	}
	if out, _, code := runTune(t, "--help"); code != 0 || !strings.Contains(out, "tune check") || !strings.Contains(out, "tune apply") {
		t.Errorf("tune --help: exit %d\n%s", code, out)
	}
}

// TestTuneApply: a dry run prints the three files and writes nothing;
// --write DIR writes them under DIR.
func TestTuneApply(t *testing.T) {
	root := smallBox(t)
	args := []string{"apply", "--root", root, "--conns", "100000", "--processes", "10"}
	cwd := t.TempDir()
	cmd := exec.Command(testserver.Binary(t), append([]string{"tune"}, args...)...)
	cmd.Dir = cwd
	outB, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	out := string(outB)
	for _, want := range []string{
		"### /etc/sysctl.d/60-switchboard.conf (then: sysctl --system)",
		"net.ipv4.tcp_mem = 100 100000 131072", // max: half of 1 GiB in pages
		"### /etc/systemd/system/switchboard.service.d/60-switchboard-limits.conf",
		"LimitNOFILE=11000",
		"### /etc/security/limits.d/60-switchboard.conf",
		"switchboard hard nofile 11000",
		"dry run: nothing written",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("dry run wrote %v", entries)
	}

	dir := t.TempDir()
	out, errOut, code := runTune(t, append(args, "--write", dir, "--user", "chat")...)
	if code != 0 {
		t.Fatalf("--write: exit %d\n%s", code, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "security/limits.d/60-switchboard.conf"))
	if err != nil || !strings.Contains(string(b), "chat soft nofile 11000\nchat hard nofile 11000\n") {
		t.Errorf("limits.d: %v\n%s", err, b)
	}
	for _, p := range []string{"sysctl.d/60-switchboard.conf", "systemd/system/switchboard.service.d/60-switchboard-limits.conf"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
		if !strings.Contains(out, "wrote "+filepath.Join(dir, p)) {
			t.Errorf("does not say it wrote %s:\n%s", p, out)
		}
	}
}

// TestServeChecksLimits: at start the server logs its open-file limit, and
// warns when gateway.max_connections is more than the box allows.
func TestServeChecksLimits(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	if log := srv.Log(); !strings.Contains(log, "open-file limit") || strings.Contains(log, "max_connections is more") {
		t.Errorf("no max_connections: log\n%s", log)
	}
	// A trillion connections: no box has the memory.
	srv = testserver.Start(t, testserver.Options{Env: []string{"SWITCHBOARD_GATEWAY_MAX_CONNECTIONS=1000000000000"}})
	if log := srv.Log(); !strings.Contains(log, "gateway.max_connections is more than this box's limits allow") ||
		!strings.Contains(log, "memory (MemTotal)") {
		t.Errorf("max_connections 1e12: log\n%s", log)
	}
}
