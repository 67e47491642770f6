package testengines

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	runCalled atomic.Bool

	sharedMu    sync.Mutex
	sharedProcs []*Process // started shared servers, stopped by Run
)

// Run runs the package's tests (m.Run), then stops the shared servers they
// started, keeping their directories (and printing where) if a test failed
// or a server would not stop. It returns the exit code for os.Exit. A test
// package that uses this package calls it from TestMain.
func Run(m *testing.M) int {
	runCalled.Store(true)
	code := m.Run()
	sharedMu.Lock()
	procs := sharedProcs
	sharedProcs = nil
	sharedMu.Unlock()
	for _, p := range procs {
		err := p.exitedUnasked()
		if err == nil {
			err = p.Stop()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "testengines: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		if code != 0 {
			fmt.Fprintf(os.Stderr, "testengines: %s's directory kept: %s (log %s)\n", p.name, p.dir, p.LogPath())
		}
		p.finish(code != 0)
	}
	return code
}

// lazy is a shared server of one kind, started on first use.
type lazy[S any] struct {
	once sync.Once
	srv  S
	proc *Process
	err  error
}

// get returns the shared server, starting it the first time. It fails the
// test if the server cannot start, or has died since.
func (l *lazy[S]) get(t testing.TB, start func() (S, *Process, error)) S {
	t.Helper()
	if !runCalled.Load() {
		t.Fatal("testengines: the package's TestMain must call testengines.Run(m), which stops the shared servers")
	}
	l.once.Do(func() {
		l.srv, l.proc, l.err = start()
		if l.proc != nil {
			sharedMu.Lock()
			sharedProcs = append(sharedProcs, l.proc)
			sharedMu.Unlock()
		}
	})
	if l.err != nil {
		t.Fatalf("shared test server: %v", l.err)
	}
	if err := l.proc.exitedUnasked(); err != nil {
		t.Fatal(err)
	}
	return l.srv
}

// own starts a server that the test owns (see private).
func own[S any](t testing.TB, start func() (S, *Process, error)) S {
	t.Helper()
	s, p, err := start()
	if p != nil {
		private(t, p)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// private registers the cleanup of a server the test owns: stop it, and
// keep its directory if the test failed.
func private(t testing.TB, p *Process) {
	t.Cleanup(func() {
		if err := p.exitedUnasked(); err != nil {
			t.Error(err)
		}
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		keep := t.Failed()
		p.finish(keep)
		if keep {
			t.Logf("%s's directory kept: %s (log %s)", p.name, p.dir, p.LogPath())
		}
	})
}
