package assets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// Hash is the SHA-256 of a blob's content: its name.
type Hash [sha256.Size]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("%w: %d characters, want %d", ErrBadHash, len(s), 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return h, nil
}

// Blob describes a stored blob.
type Blob struct {
	Hash Hash
	Size int64
}

// Errors of a Blobs store.
var (
	// ErrNotFound: no blob with that hash.
	ErrNotFound = errors.New("assets: blob not found")
	// ErrTooLarge: Put read more than its limit; nothing was stored.
	ErrTooLarge = errors.New("assets: blob over the size limit")
	// ErrBadHash: a hash that is not 64 hex digits.
	ErrBadHash = errors.New("assets: malformed hash")
	// ErrRange: a read outside the blob.
	ErrRange = errors.New("assets: range outside the blob")
)

// Blobs is a content-addressed store of immutable byte strings.
//
// All methods are safe for concurrent use. A blob is visible to Stat and
// Read only once it is complete and durable: a reader never sees part of
// one, and a Put that fails (or whose context ends) leaves nothing behind
// that is ever served.
type Blobs interface {
	// Put stores what r yields, at most limit bytes (more is ErrTooLarge),
	// streaming: it never holds the whole content in memory. It returns
	// the content's hash and size. If a blob with that hash exists, the
	// new copy is dropped: one copy per hash.
	Put(ctx context.Context, r io.Reader, limit int64) (Blob, error)

	// Stat returns the blob named h, or ErrNotFound.
	Stat(ctx context.Context, h Hash) (Blob, error)

	// Read returns a reader of length bytes of blob h from offset off
	// (length < 0: to the end). The caller closes it. ErrNotFound if there
	// is no such blob, ErrRange if off is past its end.
	Read(ctx context.Context, h Hash, off, length int64) (io.ReadCloser, error)

	// Delete removes blob h. Deleting a blob that is not there is not an
	// error.
	Delete(ctx context.Context, h Hash) error
}

// FileOpener is an optional ability of a Blobs store that keeps blobs in
// local files: the file of blob h, opened for reading (ErrNotFound if
// there is none). The asset API serves it with sendfile(2), the bytes
// never copied through the process. The caller closes it.
type FileOpener interface {
	OpenFile(ctx context.Context, h Hash) (*os.File, error)
}
