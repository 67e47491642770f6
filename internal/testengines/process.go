package testengines

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	pollInterval = 50 * time.Millisecond
	// tailLines and tailBytes bound the log tail quoted in an error.
	tailLines = 40
	tailBytes = 8 << 10
)

// errNotReady is what a readiness probe returns while the server starts.
var errNotReady = errors.New("not ready yet")

// Process is one server process: its directory (configuration, data and
// NAME.log) and how to start it and tell that it is ready. Its methods are
// safe for concurrent use.
type Process struct {
	name         string // redis, kafka, cassandra
	dir          string
	argv         []string
	ready        func(p *Process, logFrom int64) error // nil once ready, errNotReady before
	readyTimeout time.Duration
	stopTimeout  time.Duration

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error         // cmd.Wait's result, read after done
	asked   bool          // the exit was asked for (Stop, Kill)
}

// newProcess makes the process's directory; the caller fills in the rest.
func newProcess(name string, readyTimeout, stopTimeout time.Duration) (*Process, error) {
	dir, err := os.MkdirTemp("", "switchboard-"+name+"-")
	if err != nil {
		return nil, err
	}
	return &Process{name: name, dir: dir, readyTimeout: readyTimeout, stopTimeout: stopTimeout}, nil
}

// Dir returns the server's directory: its configuration, data and log.
func (p *Process) Dir() string { return p.dir }

// LogPath returns the server's log file, which every start appends to.
func (p *Process) LogPath() string { return filepath.Join(p.dir, p.name+".log") }

// PID returns the process id of the current (or last) run.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Start starts the server again, on the same ports and data, after
// [Process.Stop] or [Process.Kill], and returns once it is ready. It fails
// the test if the server does not start. Only for servers the test owns
// (NewRedis, NewKafka, NewCassandra).
func (p *Process) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop asks the server to shut down (SIGTERM) and waits for it to exit;
// after the stop timeout it kills it and returns an error. A server that
// has already exited is not an error.
func (p *Process) Stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.asked = true
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(p.stopTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed (log: %s)", p.name, p.stopTimeout, p.LogPath())
	}
}

// Kill kills the server (SIGKILL), as a crash would, and waits for it to
// exit.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.asked = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// exitedUnasked returns an error if the server exited while nobody asked
// it to.
func (p *Process) exitedUnasked() error {
	p.mu.Lock()
	done, asked := p.done, p.asked
	p.mu.Unlock()
	if done == nil || asked {
		return nil
	}
	select {
	case <-done:
		return fmt.Errorf("%s exited (%v) while tests used it; its log (%s) ends:\n%s", p.name, p.waitErr, p.LogPath(), p.tail())
	default:
		return nil
	}
}

// start runs argv with its output appended to the log and polls ready
// until it answers, the process exits or readyTimeout passes. On failure
// the process is stopped and the error quotes the log's tail.
func (p *Process) start() error {
	log, err := os.OpenFile(p.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := log.Stat()
	if err != nil {
		log.Close()
		return err
	}
	from := st.Size()
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = procAttr()
	err = cmd.Start()
	log.Close() // the child has its own
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.asked = cmd, done, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()

	began := time.Now()
	deadline := time.NewTimer(p.readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := p.ready(p, from)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			p.mu.Lock()
			werr := p.waitErr
			p.mu.Unlock()
			return fmt.Errorf("%s exited (%v) %v after it started, before it was ready; its log (%s) ends:\n%s",
				p.name, werr, time.Since(began).Round(time.Millisecond), p.LogPath(), p.tail())
		case <-deadline.C:
			_ = p.Stop()
			return fmt.Errorf("%s not ready within %v (%v); its log (%s) ends:\n%s", p.name, p.readyTimeout, err, p.LogPath(), p.tail())
		case <-tick.C:
		}
	}
}

// finish stops the server if it runs and removes its directory, unless
// keep, and returns what went wrong stopping it.
func (p *Process) finish(keep bool) error {
	err := p.Stop()
	if !keep {
		os.RemoveAll(p.dir)
	}
	return err
}

// tail returns the end of the log: at most tailLines lines, tailBytes
// bytes.
func (p *Process) tail() string {
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// logSays returns a readiness probe: ready once the log, from where this
// start began, holds marker.
func logSays(marker string) func(p *Process, logFrom int64) error {
	return func(p *Process, from int64) error {
		b, err := os.ReadFile(p.LogPath())
		if err != nil {
			return err
		}
		if int64(len(b)) > from && bytes.Contains(b[from:], []byte(marker)) {
			return nil
		}
		return fmt.Errorf("%w: no %q in the log", errNotReady, marker)
	}
}

// launch runs setup (which picks ports and writes the configuration) and
// starts the process, trying again with new ports when the ones picked
// were taken between the check and the server's bind.
func launch(p *Process, setup func(*Process) error) error {
	var errs []error
	for range 3 {
		if err := setup(p); err != nil {
			return err
		}
		err := p.start()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if !strings.Contains(err.Error(), "ddress already in use") {
			break
		}
	}
	return errors.Join(errs...)
}

// freePorts returns n loopback ports that were free a moment ago, all
// different.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are picked, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// cacheDir returns the module's .cache/NAME/lib after checking that it
// holds jar (a glob), which scripts/engines-deps.sh installs.
func cacheLib(name, jar string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = up
	}
	lib := filepath.Join(dir, ".cache", name, "lib")
	if m, _ := filepath.Glob(filepath.Join(lib, jar)); len(m) == 0 {
		return "", fmt.Errorf("%s is not installed (no %s in %s): run `make deps` (scripts/engines-deps.sh)", name, jar, lib)
	}
	return lib, nil
}

// javaPath returns the java on PATH.
func javaPath() (string, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java (17) not found on PATH: %w", err)
	}
	return java, nil
}
