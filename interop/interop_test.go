package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// pingInterval and idleTimeout are the server's: short, so that the
	// scripts' idle step (scriptIdle, longer than idleTimeout) sees server
	// pings and proves the libraries answer them.
	pingInterval = "500ms"
	idleTimeout  = "2s"
	scriptIdle   = "3"

	buildTimeout  = 3 * time.Minute
	readyTimeout  = 20 * time.Second
	scriptTimeout = 90 * time.Second
)

// tools are the interpreters and scripts installed by scripts/test-deps.sh.
type tools struct {
	python   string // the venv's python, with websockets
	node     string // node on PATH
	nodeMods string // directory holding node_modules/ws
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
	if _, err := os.Stat(filepath.Join(tl.nodeMods, "node_modules", "ws", "package.json")); err != nil {
		missing = append(missing, fmt.Sprintf("node ws package in %s", tl.nodeMods))
	}
	if len(missing) > 0 {
		t.Fatalf("interop tools missing: %s\nrun: bash scripts/test-deps.sh", strings.Join(missing, "; "))
	}
	return tl
}

// server is a switchboard process started by the test.
type server struct {
	bin, dataDir, url, logPath string
	cmd                        *exec.Cmd
	exited                     chan error
}

func buildServer(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchboard")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/switchboard")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/switchboard: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs `switchboard serve` and waits for /readyz. A Cleanup
// stops it (SIGTERM, then SIGKILL) and prints its log if the test failed.
func startServer(t *testing.T, bin string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{
		bin:     bin,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "server.log"),
		exited:  make(chan error, 1),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	addr := freePort(t)
	s.url = "ws://" + addr + "/v1/ws"
	s.cmd = exec.Command(bin, "serve", "--listen", addr, "--data-dir", s.dataDir)
	s.cmd.Env = append(os.Environ(),
		"SWITCHBOARD_GATEWAY_PING_INTERVAL="+pingInterval,
		"SWITCHBOARD_GATEWAY_IDLE_TIMEOUT="+idleTimeout,
	)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })

	readyz := "http://" + addr + "/readyz"
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if resp, err := client.Get(readyz); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s not ready within %v", addr, readyTimeout)
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			t.Fatalf("server exited before it was ready: %v", err)
		case <-poll.C:
		}
	}
}

func (s *server) stop(t *testing.T) {
	select {
	case err := <-s.exited:
		t.Errorf("server exited during the test: %v", err)
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			t.Errorf("server did not stop within 10s of SIGTERM; killed")
		}
	}
	if t.Failed() {
		log, _ := os.ReadFile(s.logPath)
		t.Logf("server log (%s):\n%s", s.logPath, log)
	}
}

// token mints a token for user with the server's binary and data dir.
func (s *server) token(t *testing.T, user string) string {
	t.Helper()
	out, err := exec.Command(s.bin, "token", "--user", user, "--ttl", "1h", "--data-dir", s.dataDir).Output()
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
func runScript(t *testing.T, s *server, name string, argv []string, env []string) {
	t.Helper()
	userA, userB := "alice-"+name, "bob-"+name
	argv = append(argv,
		"--url", s.url,
		"--token-a", s.token(t, userA),
		"--token-b", s.token(t, userB),
		"--user-a", userA,
		"--user-b", userB,
		"--idle", scriptIdle,
	)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	passed := false
	var fail []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		switch {
		case strings.HasPrefix(line, "PASS "):
			passed = true
		case strings.HasPrefix(line, "FAIL "), strings.HasPrefix(line, "Traceback"):
			fail = append(fail, line)
		}
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s client did not finish within %v", name, scriptTimeout)
	case err != nil:
		t.Fatalf("%s client failed (%v): %s", name, err, strings.Join(fail, "; "))
	case !passed:
		t.Fatalf("%s client exited 0 without printing PASS", name)
	}
}

// TestInterop runs the protocol v1 scenario with Python's websockets and
// Node's ws against a real server (see the package doc).
func TestInterop(t *testing.T) {
	root := repoRoot(t)
	tl := findTools(t, root)
	s := startServer(t, buildServer(t, root))
	here := filepath.Join(root, "interop")

	t.Run("python-websockets", func(t *testing.T) {
		runScript(t, s, "python", []string{tl.python, filepath.Join(here, "python_client.py")}, nil)
	})
	t.Run("node-ws", func(t *testing.T) {
		runScript(t, s, "node", []string{tl.node, filepath.Join(here, "node_client.mjs")},
			[]string{"INTEROP_NODE_MODULES=" + tl.nodeMods})
	})
}
