package s3

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
	"testing"
	"time"
)

// The tests run against a real S3 server: the Versity S3 Gateway
// (versitygw) over a temporary directory, started once for the package
// on a free loopback port. `make deps` (scripts/test-deps.sh) installs it
// as .cache/bin/versitygw; SWITCHBOARD_VERSITYGW names another binary.

const (
	gwAccess = "switchboard-test"
	gwSecret = "switchboard-test-secret"
	// gwReady bounds the wait for the gateway to answer.
	gwReady = 30 * time.Second
)

// gateway is a running versitygw.
type gateway struct {
	endpoint string // host:port
	dir      string
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error
	stderr   bytes.Buffer // read only after done
}

var gw struct {
	once sync.Once
	g    *gateway
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gw.g != nil {
		gw.g.stop()
	}
	os.Exit(code)
}

// server returns the package's gateway, starting it on first use. It
// fails the test, never skips it, if the gateway cannot run.
func server(t testing.TB) *gateway {
	t.Helper()
	gw.once.Do(func() { gw.g, gw.err = startGateway() })
	if gw.err != nil {
		t.Fatalf("S3 test server: %v", gw.err)
	}
	return gw.g
}

var bucketSeq atomic.Int64

// newBucket returns a bucket name no other test uses.
func newBucket() string {
	return fmt.Sprintf("blobs-%d-%d", os.Getpid(), bucketSeq.Add(1))
}

// options returns Options for a new bucket on the gateway.
func options(t testing.TB) Options {
	g := server(t)
	return Options{Endpoint: g.endpoint, Bucket: newBucket(), AccessKey: gwAccess, SecretKey: gwSecret, Prefix: "assets/"}
}

// versitygwPath finds the binary: $SWITCHBOARD_VERSITYGW, or
// .cache/bin/versitygw in the module root (the directory above with
// go.mod).
func versitygwPath() (string, error) {
	if p := os.Getenv("SWITCHBOARD_VERSITYGW"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "bin", "versitygw"), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = up
	}
}

func startGateway() (*gateway, error) {
	bin, err := versitygwPath()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("versitygw not found (%v): run `make deps` to install it, or set SWITCHBOARD_VERSITYGW", err)
	}
	// The port is free when we look; another process may take it before
	// versitygw binds it, so try a few.
	var errs []error
	for range 3 {
		g, err := runGateway(bin)
		if err == nil {
			return g, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("versitygw (%s) did not start (run `make deps` to reinstall it): %w", bin, errors.Join(errs...))
}

func runGateway(bin string) (*gateway, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	dir, err := os.MkdirTemp("", "versitygw-")
	if err != nil {
		return nil, err
	}
	g := &gateway{endpoint: addr, dir: dir, done: make(chan struct{})}
	g.cmd = exec.Command(bin, "--access", gwAccess, "--secret", gwSecret, "--port", addr, "--quiet", "posix", dir)
	g.cmd.Stderr = &g.stderr
	g.cmd.SysProcAttr = procAttr()
	if err := g.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.done)
	}()
	if err := g.awaitReady(); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

// awaitReady polls until the gateway answers HTTP (any status: an
// unsigned request is refused, which is an answer), it exits, or gwReady
// passes.
func (g *gateway) awaitReady() error {
	deadline := time.NewTimer(gwReady)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + g.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-g.done:
			return fmt.Errorf("exited (%v) before answering on %s: %s", g.waitErr, g.endpoint, bytes.TrimSpace(g.stderr.Bytes()))
		case <-deadline.C:
			return fmt.Errorf("no answer on %s within %v: %v", g.endpoint, gwReady, err)
		case <-tick.C:
		}
	}
}

// stop ends the gateway (SIGTERM, then SIGKILL after 10 s) and removes
// its directory.
func (g *gateway) stop() {
	g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
	os.RemoveAll(g.dir)
}

// open returns a Store on a new bucket.
func open(t testing.TB, opts Options) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}
