package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testserver"
)

const (
	// pingInterval and idleTimeout are the server's: short, so that the
	// scripts' idle step (scriptIdle, longer than idleTimeout) sees server
	// pings and proves the libraries answer them.
	pingInterval = "500ms"
	idleTimeout  = "2s"
	scriptIdle   = "3"

	stopTimeout   = 10 * time.Second // SIGTERM to exit, at the end of the test
	scriptTimeout = 90 * time.Second
)

// tools are the interpreters and scripts installed by scripts/test-deps.sh.
type tools struct {
	python   string // the venv's python, with websockets
	node     string // node on PATH
	nodeMods string // directory holding node_modules/ws and node_modules/tus-js-client
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repo root %s has no go.mod: %v", root, err)
	}
	return root
}

// findTools fails the test, pointing at scripts/test-deps.sh, when any tool
// is missing: an interop test that skips would pass without checking.
func findTools(t *testing.T, root string) tools {
	t.Helper()
	cache := os.Getenv("INTEROP_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache", "interop")
	}
	tl := tools{
		python:   filepath.Join(cache, "venv", "bin", "python"),
		nodeMods: filepath.Join(cache, "node"),
	}
	var missing []string
	if out, err := exec.Command(tl.python, "-c", "import websockets").CombinedOutput(); err != nil {
		missing = append(missing, fmt.Sprintf("python websockets in %s (%v: %s)", tl.python, err, bytes.TrimSpace(out)))
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node on PATH")
	}
	tl.node = node
	for _, pkg := range []string{"ws", "tus-js-client"} {
		if _, err := os.Stat(filepath.Join(tl.nodeMods, "node_modules", pkg, "package.json")); err != nil {
			missing = append(missing, fmt.Sprintf("node %s package in %s", pkg, tl.nodeMods))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("interop tools missing: %s\nrun: bash scripts/test-deps.sh", strings.Join(missing, "; "))
	}
	return tl
}

func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }

// cliToken mints a token for user with `switchboard token`, on the
// server's data dir, as a user of the binary would.
func cliToken(t *testing.T, s *testserver.Server, user string) string {
	t.Helper()
	out, err := exec.Command(testserver.Binary(t), "token", "--user", user, "--ttl", "1h", "--data-dir", s.DataDir()).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("switchboard token --user %s: %v\n%s", user, err, ee.Stderr)
		}
		t.Fatalf("switchboard token --user %s: %v", user, err)
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("switchboard token --user %s printed %q, want one token", user, out)
	}
	return tok
}

// runScript runs one scenario script with fresh users alice-<name> and
// bob-<name>, logs its lines, and fails unless it exits 0 with PASS.
func runScript(t *testing.T, s *testserver.Server, name string, argv []string, env []string) {
	t.Helper()
	userA, userB := "alice-"+name, "bob-"+name
	argv = append(argv,
		"--url", s.URL(),
		"--token-a", cliToken(t, s, userA),
		"--token-b", cliToken(t, s, userB),
		"--user-a", userA,
		"--user-b", userB,
		"--idle", scriptIdle,
	)
	runPassing(t, name, argv, env)
}

// runPassing runs argv with env added, logs its lines, and fails unless it
// exits 0 having printed a line that starts with "PASS ", which it returns.
func runPassing(t *testing.T, name string, argv []string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var pass string
	var fail []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		switch {
		case strings.HasPrefix(line, "PASS "):
			pass = line
		case strings.HasPrefix(line, "FAIL "), strings.HasPrefix(line, "Traceback"):
			fail = append(fail, line)
		}
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s client did not finish within %v", name, scriptTimeout)
	case err != nil:
		t.Fatalf("%s client failed (%v): %s", name, err, strings.Join(fail, "; "))
	case pass == "":
		t.Fatalf("%s client exited 0 without printing PASS", name)
	}
	return pass
}

// TestInterop runs the protocol v1 scenario with Python's websockets and
// Node's ws against a real server (see the package doc).
func TestInterop(t *testing.T) {
	root := repoRoot(t)
	tl := findTools(t, root)
	s := testserver.Start(t, testserver.Options{
		Env: []string{
			"SWITCHBOARD_GATEWAY_PING_INTERVAL=" + pingInterval,
			"SWITCHBOARD_GATEWAY_IDLE_TIMEOUT=" + idleTimeout,
		},
		StopTimeout: stopTimeout,
	})
	here := filepath.Join(root, "interop")

	t.Run("python-websockets", func(t *testing.T) {
		runScript(t, s, "python", []string{tl.python, filepath.Join(here, "python_client.py")}, nil)
	})
	t.Run("node-ws", func(t *testing.T) {
		runScript(t, s, "node", []string{tl.node, filepath.Join(here, "node_client.mjs")},
			[]string{"INTEROP_NODE_MODULES=" + tl.nodeMods})
	})
}
