// Package blobdir is the embedded assets.Blobs: a local directory of files
// named by the SHA-256 of their content.
//
// Layout under the directory:
//
//	blobs/<h[0:2]>/<h[2:4]>/<h>   one file per blob (h: 64 hex digits)
//	tmp/                          uploads in progress
//
// Two levels of 256 shards keep directories small (a million blobs is
// about 15 per leaf directory). A Put streams into a temporary file while
// hashing, fsyncs it, then renames it to its name (atomic on POSIX) and
// fsyncs the directory: a blob is either absent or whole and durable, and
// a crash leaves at most a temporary file, which Open removes. If the
// blob exists already, the new copy is dropped: one copy per hash.
package blobdir

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/internal/fsutil"
)

var (
	_ assets.Blobs      = (*Store)(nil)
	_ assets.FileOpener = (*Store)(nil)
)

// Store is a directory of blobs. Its methods are safe for concurrent use,
// also by several processes sharing the directory.
type Store struct {
	blobs, tmp string
}

// Open opens (creating it if needed) the blob directory dir, and removes
// what uploads interrupted by a crash left in its tmp/.
func Open(dir string) (*Store, error) {
	s := &Store{blobs: filepath.Join(dir, "blobs"), tmp: filepath.Join(dir, "tmp")}
	for _, d := range []string{s.blobs, s.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blobdir: %w", err)
		}
	}
	left, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("blobdir: %w", err)
	}
	for _, e := range left {
		os.Remove(filepath.Join(s.tmp, e.Name()))
	}
	return s, nil
}

func (s *Store) path(h assets.Hash) (dir, file string) {
	x := h.String()
	dir = filepath.Join(s.blobs, x[0:2], x[2:4])
	return dir, filepath.Join(dir, x)
}

// ctxReader fails reads once ctx is done, so a cancelled upload stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put streams r into a temporary file, hashing it, at most limit bytes;
// see assets.Blobs.
func (s *Store) Put(ctx context.Context, r io.Reader, limit int64) (assets.Blob, error) {
	if err := ctx.Err(); err != nil {
		return assets.Blob{}, err
	}
	f, err := os.CreateTemp(s.tmp, "up-*")
	if err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: %w", err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, limit+1))
	if err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: put: %w", err)
	}
	if n > limit {
		return assets.Blob{}, assets.ErrTooLarge
	}
	if err := f.Sync(); err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: put: %w", err)
	}
	if err := f.Close(); err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: put: %w", err)
	}
	blob := assets.Blob{Hash: assets.Hash(h.Sum(nil)), Size: n}
	dir, final := s.path(blob.Hash)
	if _, err := os.Stat(final); err == nil {
		return blob, nil // stored already: the deferred cleanup drops this copy
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: put: %w", err)
	}
	// Renaming over a concurrent Put of the same content is harmless: the
	// bytes are the same.
	if err := os.Rename(tmp, final); err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: put: %w", err)
	}
	committed = true
	if err := syncDirs(dir, filepath.Dir(dir), s.blobs); err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: put: %w", err)
	}
	return blob, nil
}

// syncDirs makes the rename and any shard directories it needed durable.
func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Stat returns blob h; see assets.Blobs.
func (s *Store) Stat(ctx context.Context, h assets.Hash) (assets.Blob, error) {
	if err := ctx.Err(); err != nil {
		return assets.Blob{}, err
	}
	_, file := s.path(h)
	fi, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return assets.Blob{}, assets.ErrNotFound
	}
	if err != nil {
		return assets.Blob{}, fmt.Errorf("blobdir: %w", err)
	}
	return assets.Blob{Hash: h, Size: fi.Size()}, nil
}

// Read opens blob h at off; see assets.Blobs.
func (s *Store) Read(ctx context.Context, h assets.Hash, off, length int64) (io.ReadCloser, error) {
	f, err := s.OpenFile(ctx, h)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blobdir: %w", err)
	}
	if off < 0 || off > fi.Size() || (off == fi.Size() && length > 0) {
		f.Close()
		return nil, assets.ErrRange
	}
	if length < 0 || off+length > fi.Size() {
		length = fi.Size() - off
	}
	return &section{SectionReader: io.NewSectionReader(f, off, length), f: f}, nil
}

// OpenFile opens blob h's file (assets.FileOpener). Safe for concurrent
// use.
func (s *Store) OpenFile(ctx context.Context, h assets.Hash) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, file := s.path(h)
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, assets.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blobdir: %w", err)
	}
	return f, nil
}

// section reads a range of an open file and closes it.
type section struct {
	*io.SectionReader
	f *os.File
}

func (s *section) Close() error { return s.f.Close() }

// Delete removes blob h; see assets.Blobs.
func (s *Store) Delete(ctx context.Context, h assets.Hash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, file := s.path(h)
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobdir: %w", err)
	}
	return nil
}
