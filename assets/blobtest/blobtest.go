// Package blobtest is the conformance suite for assets.Blobs, run by
// every backend from its own tests:
//
//	func TestBlobs(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) assets.Blobs { return open(t) })
//	}
//
// It uses only the assets.Blobs methods.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/assets"
)

// Run runs the suite. open returns a new, empty store for one subtest and
// registers its own cleanup.
func Run(t *testing.T, open func(t *testing.T) assets.Blobs) {
	t.Run("PutStatRead", func(t *testing.T) { testPutStatRead(t, open(t)) })
	t.Run("Ranges", func(t *testing.T) { testRanges(t, open(t)) })
	t.Run("Dedup", func(t *testing.T) { testDedup(t, open(t)) })
	t.Run("TooLarge", func(t *testing.T) { testTooLarge(t, open(t)) })
	t.Run("FailedReader", func(t *testing.T) { testFailedReader(t, open(t)) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, open(t)) })
	t.Run("Large", func(t *testing.T) { testLarge(t, open(t)) })
	t.Run("ConcurrentSameContent", func(t *testing.T) { testConcurrentSame(t, open(t)) })
}

// content returns n deterministic pseudo-random bytes.
func content(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func put(t *testing.T, s assets.Blobs, b []byte) assets.Blob {
	t.Helper()
	blob, err := s.Put(context.Background(), bytes.NewReader(b), int64(len(b))+1)
	if err != nil {
		t.Fatalf("Put(%d bytes): %v", len(b), err)
	}
	if want := assets.Hash(sha256.Sum256(b)); blob.Hash != want || blob.Size != int64(len(b)) {
		t.Fatalf("Put returned %x/%d, want %x/%d", blob.Hash, blob.Size, want, len(b))
	}
	return blob
}

func read(t *testing.T, s assets.Blobs, h assets.Hash, off, n int64) []byte {
	t.Helper()
	r, err := s.Read(context.Background(), h, off, n)
	if err != nil {
		t.Fatalf("Read(%x, %d, %d): %v", h[:4], off, n, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %x: %v", h[:4], err)
	}
	return b
}

func testPutStatRead(t *testing.T, s assets.Blobs) {
	b := content(1, 10_000)
	blob := put(t, s, b)
	got, err := s.Stat(context.Background(), blob.Hash)
	if err != nil || got != blob {
		t.Fatalf("Stat = %+v, %v; want %+v", got, err, blob)
	}
	if r := read(t, s, blob.Hash, 0, -1); !bytes.Equal(r, b) {
		t.Fatalf("Read returned %d bytes, not the %d stored", len(r), len(b))
	}
}

func testRanges(t *testing.T, s assets.Blobs) {
	b := content(2, 1000)
	blob := put(t, s, b)
	for _, c := range []struct{ off, n int64 }{{0, 1}, {0, 1000}, {999, 1}, {100, 200}, {500, -1}, {999, -1}, {990, 100}} {
		want := b[c.off:]
		if c.n >= 0 && c.off+c.n < int64(len(b)) {
			want = b[c.off : c.off+c.n]
		}
		if got := read(t, s, blob.Hash, c.off, c.n); !bytes.Equal(got, want) {
			t.Fatalf("Read(off %d, n %d) = %d bytes, want %d", c.off, c.n, len(got), len(want))
		}
	}
	if _, err := s.Read(context.Background(), blob.Hash, 1001, 1); !errors.Is(err, assets.ErrRange) {
		t.Fatalf("Read past the end: %v, want ErrRange", err)
	}
}

func testDedup(t *testing.T, s assets.Blobs) {
	b := content(3, 5000)
	first := put(t, s, b)
	second := put(t, s, bytes.Clone(b))
	if first != second {
		t.Fatalf("the same content stored as %+v and %+v", first, second)
	}
	other := put(t, s, content(4, 5000))
	if other.Hash == first.Hash {
		t.Fatal("different content, same hash")
	}
	if r := read(t, s, first.Hash, 0, -1); !bytes.Equal(r, b) {
		t.Fatal("content changed after a second Put of it")
	}
}

func testTooLarge(t *testing.T, s assets.Blobs) {
	b := content(5, 4097)
	_, err := s.Put(context.Background(), bytes.NewReader(b), 4096)
	if !errors.Is(err, assets.ErrTooLarge) {
		t.Fatalf("Put over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := s.Stat(context.Background(), sha256.Sum256(b)); !errors.Is(err, assets.ErrNotFound) {
		t.Fatalf("Stat after a refused Put: %v, want ErrNotFound", err)
	}
	// Exactly at the limit is fine.
	blob, err := s.Put(context.Background(), bytes.NewReader(b[:4096]), 4096)
	if err != nil || blob.Size != 4096 {
		t.Fatalf("Put at the limit: %+v, %v", blob, err)
	}
}

// failing yields some bytes, then an error.
type failing struct {
	r   io.Reader
	err error
}

func (f *failing) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func testFailedReader(t *testing.T, s assets.Blobs) {
	b := content(6, 3000)
	boom := errors.New("connection dropped")
	_, err := s.Put(context.Background(), &failing{r: bytes.NewReader(b), err: boom}, 1<<20)
	if !errors.Is(err, boom) {
		t.Fatalf("Put from a failing reader: %v, want the reader's error", err)
	}
	if _, err := s.Stat(context.Background(), sha256.Sum256(b)); !errors.Is(err, assets.ErrNotFound) {
		t.Fatalf("a failed Put left a blob: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, bytes.NewReader(b), 1<<20); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
}

func testEmpty(t *testing.T, s assets.Blobs) {
	blob := put(t, s, nil)
	if blob.Size != 0 {
		t.Fatalf("empty blob size %d", blob.Size)
	}
	if r := read(t, s, blob.Hash, 0, -1); len(r) != 0 {
		t.Fatalf("empty blob read %d bytes", len(r))
	}
}

func testDelete(t *testing.T, s assets.Blobs) {
	blob := put(t, s, content(7, 100))
	ctx := context.Background()
	if err := s.Delete(ctx, blob.Hash); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, blob.Hash); !errors.Is(err, assets.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, blob.Hash); err != nil {
		t.Fatalf("Delete of a missing blob: %v", err)
	}
}

func testNotFound(t *testing.T, s assets.Blobs) {
	var h assets.Hash
	h[0] = 1
	if _, err := s.Stat(context.Background(), h); !errors.Is(err, assets.ErrNotFound) {
		t.Fatalf("Stat: %v, want ErrNotFound", err)
	}
	if _, err := s.Read(context.Background(), h, 0, -1); !errors.Is(err, assets.ErrNotFound) {
		t.Fatalf("Read: %v, want ErrNotFound", err)
	}
}

// testLarge stores 24 MiB from a reader that is not a bytes.Reader (no
// length known), so that stores which upload in parts use several.
func testLarge(t *testing.T, s assets.Blobs) {
	const n = 24 << 20
	b := content(8, n)
	blob, err := s.Put(context.Background(), io.MultiReader(bytes.NewReader(b[:n/3]), bytes.NewReader(b[n/3:])), n)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if blob.Hash != sha256.Sum256(b) || blob.Size != n {
		t.Fatalf("Put returned %+v", blob)
	}
	if got := read(t, s, blob.Hash, n-10, -1); !bytes.Equal(got, b[n-10:]) {
		t.Fatal("the tail of a large blob differs")
	}
	h := sha256.New()
	r, err := s.Read(context.Background(), blob.Hash, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), blob.Hash[:]) {
		t.Fatal("a large blob reads back different")
	}
}

func testConcurrentSame(t *testing.T, s assets.Blobs) {
	b := content(9, 200_000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			blob, err := s.Put(context.Background(), bytes.NewReader(b), 1<<20)
			if err == nil && blob.Hash != sha256.Sum256(b) {
				err = fmt.Errorf("hash %x", blob.Hash[:4])
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put of the same content: %v", err)
		}
	}
	if r := read(t, s, sha256.Sum256(b), 0, -1); !bytes.Equal(r, b) {
		t.Fatal("content differs after concurrent Puts")
	}
}
