package blobdir

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/assets/blobtest"
)

func TestBlobs(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) assets.Blobs {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestNothingHalfWritten: a failed upload leaves no file behind, and a
// temporary file left by a crash is removed at Open and never served.
func TestNothingHalfWritten(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("dropped")
	if _, err := s.Put(context.Background(), &failAfter{n: 5000, err: boom}, 1<<20); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("a failed Put left %d temporary files", len(left))
	}
	os.WriteFile(filepath.Join(dir, "tmp", "up-crashed"), bytes.Repeat([]byte("x"), 100), 0o600)
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("Open left %d temporary files", len(left))
	}
	var blobs int
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			blobs++
		}
		return nil
	})
	if blobs != 0 {
		t.Fatalf("%d blobs after only failed uploads", blobs)
	}
}

// failAfter yields n bytes, then err.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}
