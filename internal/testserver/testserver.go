package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/auth"
)

const (
	// importPath is the command the tests run.
	importPath = "github.com/switchboard/switchboard/cmd/switchboard"

	buildTimeout = 5 * time.Minute
	readyTimeout = 20 * time.Second
	pollInterval = 20 * time.Millisecond

	defaultStopTimeout = 15 * time.Second
)

var (
	buildOnce sync.Once
	buildDir  string // holds the binary; removed by Main
	binPath   string
	buildErr  error
)

// Binary returns the path of the switchboard binary, built from the
// module's cmd/switchboard the first time it is called in the test process
// (the test's working directory must be inside the module, as `go test`
// arranges). A build failure fails every test that asks for the binary.
// Safe for concurrent use.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		bin := filepath.Join(dir, "switchboard")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, importPath).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build %s: %w\n%s", importPath, err, out)
			return
		}
		binPath = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Main runs the tests and then removes the binary that [Binary] built. It
// returns m.Run's exit code, for TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }
//
// m is usually the *testing.M; a wrapper lets another package's TestMain
// helper (testengines.Run) run inside.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	return code
}

// FreeAddr returns a loopback address (127.0.0.1:PORT) whose port was free
// a moment ago. Safe for concurrent use.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Token mints a token for user and device (device may be empty), valid for
// an hour, signed with the secret in dataDir (created there if missing, as
// the server does on start).
func Token(t testing.TB, dataDir, user, device string) string {
	t.Helper()
	secret, err := auth.LoadOrCreateSecret(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	is, err := auth.NewIssuer(secret)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := is.Issue(user, device, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Options says how to start a server. The zero value is a fresh server on
// a free port.
type Options struct {
	// Addr is the listen address. Default: a free loopback port (FreeAddr).
	Addr string
	// AssetsAddr is the asset API's listen address. Default: another free
	// loopback port.
	AssetsAddr string
	// DataDir is the data directory. Default: t.TempDir().
	DataDir string
	// Env is extra KEY=VALUE environment, after the test process's own.
	Env []string
	// Args are extra arguments to `serve`, after --listen and --data-dir.
	Args []string
	// StopTimeout bounds the stop at cleanup: a server still running this
	// long after SIGTERM is killed and the test fails. Default: 15s.
	StopTimeout time.Duration
}

// Server is a switchboard process started by [Start]. Its methods are safe
// for concurrent use.
type Server struct {
	addr, assetsAddr, dataDir string
	cmd                       *exec.Cmd
	log                       SyncBuffer

	done    chan struct{} // closed when the process has exited
	exitErr error         // cmd.Wait's result; read after done is closed
	stopped atomic.Bool   // the test signalled the process: its exit is expected
}

// Start runs `switchboard serve` with opts and returns once GET /readyz
// answers 200. It fails the test if the process exits first or is not
// ready within 20s. The server is stopped when the test ends (see the
// package doc). Call it from the test's goroutine.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	if opts.Addr == "" {
		opts.Addr = FreeAddr(t)
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = defaultStopTimeout
	}
	if opts.AssetsAddr == "" {
		opts.AssetsAddr = FreeAddr(t)
	}
	s := &Server{addr: opts.Addr, assetsAddr: opts.AssetsAddr, dataDir: opts.DataDir, done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "--listen", s.addr, "--data-dir", s.dataDir}, opts.Args...)...)
	s.cmd.Env = append(append(os.Environ(), "SWITCHBOARD_ASSETS_LISTEN="+opts.AssetsAddr), opts.Env...)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.cleanup(t, opts.StopTimeout) })

	readyz := "http://" + s.addr + "/readyz"
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for {
		resp, err := client.Get(readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s not ready within %v: %v", s.addr, readyTimeout, err)
		}
		select {
		case <-s.done:
			s.stopped.Store(true) // reported here, not again at cleanup
			t.Fatalf("server on %s exited before it was ready: %v", s.addr, s.exitErr)
		case <-poll.C:
		}
	}
}

// cleanup stops the process if it still runs, fails the test if it exited
// unasked or would not stop, and prints the log if the test failed.
func (s *Server) cleanup(t testing.TB, timeout time.Duration) {
	select {
	case <-s.done:
		if !s.stopped.Load() {
			t.Errorf("server on %s exited during the test: %v", s.addr, s.exitErr)
		}
	default:
		s.stopped.Store(true)
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(timeout):
			_ = s.cmd.Process.Kill()
			<-s.done
			t.Errorf("server on %s did not stop within %v of SIGTERM; killed", s.addr, timeout)
		}
	}
	if t.Failed() {
		t.Logf("server log (%s):\n%s", s.addr, s.Log())
	}
}

// Addr returns the listen address, host:port.
func (s *Server) Addr() string { return s.addr }

// AssetsURL returns the asset API's base, http://ADDR/v1/assets.
func (s *Server) AssetsURL() string { return "http://" + s.assetsAddr + "/v1/assets" }

// URL returns the WebSocket endpoint, ws://ADDR/v1/ws.
func (s *Server) URL() string { return "ws://" + s.addr + "/v1/ws" }

// DataDir returns the data directory.
func (s *Server) DataDir() string { return s.dataDir }

// PID returns the process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Log returns what the process has written to stdout and stderr so far.
func (s *Server) Log() string { return s.log.String() }

// Signal sends sig to the process and marks its exit as expected. It
// returns os.ErrProcessDone if the process has already exited.
func (s *Server) Signal(sig os.Signal) error {
	s.stopped.Store(true)
	return s.cmd.Process.Signal(sig)
}

// Done returns a channel closed when the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until the process has exited and returns its exit error: nil
// for exit status 0, an *exec.ExitError otherwise. It may be called any
// number of times.
func (s *Server) Wait() error {
	<-s.done
	return s.exitErr
}

// Stop sends SIGTERM and returns [Server.Wait]'s result.
func (s *Server) Stop() error {
	if err := s.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return s.Wait()
}

// Kill sends SIGKILL, as a crash would, and waits for the process to exit.
func (s *Server) Kill() {
	_ = s.Signal(syscall.SIGKILL)
	<-s.done
}

// SyncBuffer is a bytes.Buffer that one goroutine may write while others
// read it (a process's output copier, a terminal program under test).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
