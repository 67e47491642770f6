package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/switchboard/switchboard/assets"
)

// Defaults and bounds of Options.
const (
	// DefaultRegion is the region used when Options.Region is empty.
	DefaultRegion = "us-east-1"
	// DefaultPartSize is the part size used when Options.PartSize is 0.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest part (all but the last).
	MinPartSize = 5 << 20
	// MaxPartSize is S3's largest part.
	MaxPartSize = 5 << 30
	// MaxParts is S3's most parts in one multipart upload: a blob is at
	// most MaxParts × PartSize bytes (156.25 GiB with the default).
	MaxParts = 10_000
)

// cleanupTimeout bounds the requests that remove what a failed Put left.
// They run on a context detached from the Put's, which may have ended.
const cleanupTimeout = time.Minute

// Options configures a Store. The zero value is the default for each
// field that has one; Endpoint and Bucket are required. Validate reports
// invalid values.
type Options struct {
	// Endpoint is the server's host:port, without a scheme
	// ("s3.eu-west-1.amazonaws.com", "127.0.0.1:7070"). Required.
	Endpoint string `yaml:"endpoint" help:"S3 server host:port, no scheme (required)"`

	// Region is the bucket's region, used to sign requests and to create
	// the bucket. Default "us-east-1".
	Region string `yaml:"region" help:"S3 region (default us-east-1)"`

	// Bucket holds the blobs. Open creates it if it does not exist.
	// Required.
	Bucket string `yaml:"bucket" help:"bucket of the blobs, created if missing (required)"`

	// AccessKey and SecretKey are the static credentials. Both empty: the
	// environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or
	// MINIO_ACCESS_KEY / MINIO_SECRET_KEY). One without the other is an
	// error.
	AccessKey string `yaml:"access_key" help:"access key (default: from AWS_ACCESS_KEY_ID)"`
	SecretKey string `yaml:"secret_key" help:"secret key (default: from AWS_SECRET_ACCESS_KEY)"`

	// Secure selects HTTPS. Default false, plain HTTP: only for a gateway
	// on the loopback or a trusted network; set it for anything else.
	Secure bool `yaml:"secure" help:"use HTTPS (default false: plain HTTP)"`

	// Prefix is prepended to every key the Store writes, so that one
	// bucket can hold other data or several stores. It usually ends in
	// "/" and must not start with one. Default "" (the bucket's root).
	Prefix string `yaml:"prefix" help:"key prefix inside the bucket (default none)"`

	// PartSize is the size in bytes of one part of a multipart upload,
	// and the memory one Put holds: content is read into a buffer of
	// PartSize, sent, and the buffer reused. Content that fits in one part
	// is sent in a single PUT. In [5 MiB, 5 GiB]; the largest blob is
	// 10,000 parts. Default 16 MiB.
	PartSize int64 `yaml:"part_size" help:"multipart part size and memory per Put (bytes, default 16 MiB)"`

	// Logger receives what cannot be returned: a temporary object left
	// after its blob was stored. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports the first invalid field of o.
func (o *Options) Validate() error {
	switch {
	case o.Endpoint == "":
		return errors.New("s3: Endpoint is required")
	case strings.Contains(o.Endpoint, "://"):
		return fmt.Errorf("s3: Endpoint %q has a scheme; give host:port and set Secure for HTTPS", o.Endpoint)
	case o.Bucket == "":
		return errors.New("s3: Bucket is required")
	case (o.AccessKey == "") != (o.SecretKey == ""):
		return errors.New("s3: AccessKey and SecretKey must be set together")
	case strings.HasPrefix(o.Prefix, "/"):
		return fmt.Errorf("s3: Prefix %q starts with /", o.Prefix)
	case o.PartSize != 0 && (o.PartSize < MinPartSize || o.PartSize > MaxPartSize):
		return fmt.Errorf("s3: PartSize %d is not in [5 MiB, 5 GiB]", o.PartSize)
	}
	return nil
}

// Store is an assets.Blobs in an S3 bucket. All methods are safe for
// concurrent use, also from several processes sharing the bucket.
type Store struct {
	core     minio.Core
	bucket   string
	prefix   string
	partSize int
	log      *slog.Logger
	bufs     sync.Pool // *[]byte of partSize

	// uploaded, when set (by tests), runs after a multipart upload is
	// completed under its temporary key and before it is copied.
	uploaded func(tmpKey string)
}

var _ assets.Blobs = (*Store)(nil)

// Open connects to the server, creates the bucket if it does not exist,
// and returns the Store. The client holds no resources that need closing.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.PartSize == 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	creds := credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, "")
	if opts.AccessKey == "" {
		creds = credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.EnvMinio{}})
	}
	c, err := minio.New(opts.Endpoint, &minio.Options{Creds: creds, Secure: opts.Secure, Region: opts.Region})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	s := &Store{
		core:     minio.Core{Client: c},
		bucket:   opts.Bucket,
		prefix:   opts.Prefix,
		partSize: int(opts.PartSize),
		log:      opts.Logger,
	}
	s.bufs.New = func() any { b := make([]byte, s.partSize); return &b }

	ok, err := c.BucketExists(ctx, opts.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: bucket %s: %w", opts.Bucket, err)
	}
	if !ok {
		err := c.MakeBucket(ctx, opts.Bucket, minio.MakeBucketOptions{Region: opts.Region})
		if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" {
			return nil, fmt.Errorf("s3: creating bucket %s: %w", opts.Bucket, err)
		}
	}
	return s, nil
}

// blobKey is where blob h is stored: <prefix>blobs/<first byte>/<hash>.
func (s *Store) blobKey(h assets.Hash) string {
	x := h.String()
	return s.prefix + "blobs/" + x[:2] + "/" + x
}

// tmpKey is a fresh key for a multipart upload whose hash is not known yet.
func (s *Store) tmpKey() string {
	var b [16]byte
	rand.Read(b[:])
	return s.prefix + "tmp/" + hex.EncodeToString(b[:])
}

// Put implements assets.Blobs. Content of at most PartSize bytes is sent
// in one PUT straight to its blob key (S3 makes an object visible only
// once it is complete); larger content is uploaded in parts under a
// temporary key and copied server-side to its blob key. It holds one
// buffer of PartSize. Safe for concurrent use.
func (s *Store) Put(ctx context.Context, r io.Reader, limit int64) (assets.Blob, error) {
	if err := ctx.Err(); err != nil {
		return assets.Blob{}, err
	}
	bufp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bufp)
	p := &partReader{r: r, buf: *bufp, limit: max(limit, 0), hash: sha256.New()}

	n, eof, err := p.next()
	if err != nil {
		return assets.Blob{}, err
	}
	if eof {
		return s.putOne(ctx, p.buf[:n], p.sum())
	}
	return s.putParts(ctx, p, n)
}

// putOne stores content that fitted in one part.
func (s *Store) putOne(ctx context.Context, b []byte, h assets.Hash) (assets.Blob, error) {
	blob := assets.Blob{Hash: h, Size: int64(len(b))}
	key := s.blobKey(h)
	if got, err := s.Stat(ctx, h); err == nil && got.Size == blob.Size {
		return blob, nil // dedup
	} else if err != nil && !errors.Is(err, assets.ErrNotFound) {
		return assets.Blob{}, err
	}
	// Over HTTPS the server checks the content against its SHA-256 sent
	// in x-amz-content-sha256; over HTTP minio-go signs each chunk.
	_, err := s.core.PutObject(ctx, s.bucket, key, bytes.NewReader(b), int64(len(b)), "", h.String(), minio.PutObjectOptions{})
	if err != nil {
		return assets.Blob{}, fmt.Errorf("s3: put %s: %w", key, err)
	}
	return blob, nil
}

// putParts uploads p under a temporary key, n bytes of its first part
// already in p.buf, then copies it to its blob key. Whatever happens, the
// temporary object and the multipart upload are removed.
func (s *Store) putParts(ctx context.Context, p *partReader, n int) (_ assets.Blob, err error) {
	tmp := s.tmpKey()
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, tmp, minio.PutObjectOptions{})
	if err != nil {
		return assets.Blob{}, fmt.Errorf("s3: starting upload %s: %w", tmp, err)
	}
	completed := false
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		var cerr error
		if completed {
			cerr = s.core.RemoveObject(cctx, s.bucket, tmp, minio.RemoveObjectOptions{})
		} else {
			cerr = s.core.AbortMultipartUpload(cctx, s.bucket, tmp, id)
		}
		if cerr != nil && !isNotFound(cerr) && !isCode(cerr, "NoSuchUpload") {
			if err == nil {
				s.log.Warn("s3: blob stored, its temporary object left behind", "key", tmp, "err", cerr)
			} else {
				err = errors.Join(err, fmt.Errorf("s3: removing %s: %w", tmp, cerr))
			}
		}
	}()

	var parts []minio.CompletePart
	for {
		if err := ctx.Err(); err != nil {
			return assets.Blob{}, err
		}
		if len(parts) == MaxParts {
			return assets.Blob{}, fmt.Errorf("%w: more than %d parts of %d bytes", assets.ErrTooLarge, MaxParts, s.partSize)
		}
		num := len(parts) + 1
		part, err := s.core.PutObjectPart(ctx, s.bucket, tmp, id, num, bytes.NewReader(p.buf[:n]), int64(n), minio.PutObjectPartOptions{})
		if err != nil {
			return assets.Blob{}, fmt.Errorf("s3: uploading part %d of %s: %w", num, tmp, err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: part.ETag})
		var eof bool
		n, eof, err = p.next()
		if err != nil {
			return assets.Blob{}, err
		}
		if eof && n == 0 {
			break
		}
	}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, tmp, id, parts, minio.PutObjectOptions{}); err != nil {
		return assets.Blob{}, fmt.Errorf("s3: completing upload %s: %w", tmp, err)
	}
	completed = true
	if s.uploaded != nil {
		s.uploaded(tmp)
	}

	blob := assets.Blob{Hash: p.sum(), Size: p.size}
	if got, err := s.Stat(ctx, blob.Hash); err == nil && got.Size == blob.Size {
		return blob, nil // dedup
	} else if err != nil && !errors.Is(err, assets.ErrNotFound) {
		return assets.Blob{}, err
	}
	// ComposeObject is one CopyObject up to 5 GiB and a multipart copy
	// (UploadPartCopy) beyond; either way the blob key appears complete.
	key := s.blobKey(blob.Hash)
	_, err = s.core.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: key},
		minio.CopySrcOptions{Bucket: s.bucket, Object: tmp})
	if err != nil {
		return assets.Blob{}, fmt.Errorf("s3: copying %s to %s: %w", tmp, key, err)
	}
	return blob, nil
}

// partReader reads a Put's content a part at a time into buf, hashing it
// and enforcing the limit.
type partReader struct {
	r     io.Reader
	buf   []byte
	limit int64
	size  int64
	hash  interface {
		io.Writer
		Sum([]byte) []byte
	}
}

// next reads the next part into buf: n bytes, and whether the content
// ended. It reads at most one byte past the limit, and then fails with
// ErrTooLarge. A read error other than EOF is returned as is.
func (p *partReader) next() (n int, eof bool, err error) {
	want := int64(len(p.buf))
	if rest := p.limit + 1 - p.size; rest < want {
		want = rest
	}
	n, err = io.ReadFull(p.r, p.buf[:want])
	p.size += int64(n)
	p.hash.Write(p.buf[:n])
	switch {
	case p.size > p.limit:
		return n, false, fmt.Errorf("%w: more than %d bytes", assets.ErrTooLarge, p.limit)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return n, true, nil
	case err != nil:
		return n, false, err
	}
	return n, false, nil
}

func (p *partReader) sum() assets.Hash { return assets.Hash(p.hash.Sum(nil)) }

// Stat implements assets.Blobs with a HEAD. Safe for concurrent use.
func (s *Store) Stat(ctx context.Context, h assets.Hash) (assets.Blob, error) {
	key := s.blobKey(h)
	info, err := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return assets.Blob{}, assets.ErrNotFound
		}
		return assets.Blob{}, fmt.Errorf("s3: stat %s: %w", key, err)
	}
	return assets.Blob{Hash: h, Size: info.Size}, nil
}

// Read implements assets.Blobs with a ranged GET. Reading off == size
// yields an empty reader. The reader reads from the response body, tied
// to ctx: cancelling ctx fails the reads. Safe for concurrent use.
func (s *Store) Read(ctx context.Context, h assets.Hash, off, length int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("%w: offset %d", assets.ErrRange, off)
	}
	if length == 0 {
		return s.empty(ctx, h, off)
	}
	key := s.blobKey(h)
	var opts minio.GetObjectOptions
	ranged := true
	switch {
	case off == 0 && length < 0:
		ranged = false
	case length < 0:
		opts.SetRange(off, 0)
	default:
		opts.SetRange(off, off+length-1)
	}
	rc, _, hdr, err := s.core.GetObject(ctx, s.bucket, key, opts)
	switch {
	case isNotFound(err):
		return nil, assets.ErrNotFound
	case isCode(err, "InvalidRange") || minio.ToErrorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// off is at or past the end: S3 answers 416 for both.
		return s.empty(ctx, h, off)
	case err != nil:
		return nil, fmt.Errorf("s3: get %s: %w", key, err)
	case ranged && hdr.Get("Content-Range") == "":
		rc.Close()
		return nil, fmt.Errorf("s3: get %s: the server ignored the range of a ranged GET", key)
	}
	return rc, nil
}

// empty returns an empty reader if blob h exists and off is not past its
// end.
func (s *Store) empty(ctx context.Context, h assets.Hash, off int64) (io.ReadCloser, error) {
	blob, err := s.Stat(ctx, h)
	if err != nil {
		return nil, err
	}
	if off > blob.Size {
		return nil, fmt.Errorf("%w: offset %d of a blob of %d bytes", assets.ErrRange, off, blob.Size)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// Delete implements assets.Blobs. Deleting a missing blob succeeds. Safe
// for concurrent use.
func (s *Store) Delete(ctx context.Context, h assets.Hash) error {
	key := s.blobKey(h)
	if err := s.core.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

// SweepTemp removes what Puts of processes that died mid-upload left
// under <prefix>tmp/: objects and multipart uploads older than age. A
// live Put's temporary state is younger than the time it takes to upload
// and copy one blob, so age should exceed that by a margin (an hour is
// ample for 2 GiB). A bucket lifecycle rule on the tmp/ prefix (expire
// objects, abort incomplete multipart uploads after a day) does the same
// without this call. Safe for concurrent use.
func (s *Store) SweepTemp(ctx context.Context, age time.Duration) error {
	prefix := s.prefix + "tmp/"
	before := time.Now().Add(-age)
	var errs []error
	for obj := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("s3: listing %s: %w", prefix, obj.Err)
		}
		if obj.LastModified.Before(before) {
			if err := s.core.RemoveObject(ctx, s.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("s3: removing %s: %w", obj.Key, err))
			}
		}
	}
	for up := range s.core.ListIncompleteUploads(ctx, s.bucket, prefix, true) {
		if up.Err != nil {
			return errors.Join(append(errs, fmt.Errorf("s3: listing uploads under %s: %w", prefix, up.Err))...)
		}
		if up.Initiated.Before(before) {
			if err := s.core.AbortMultipartUpload(ctx, s.bucket, up.Key, up.UploadID); err != nil && !isCode(err, "NoSuchUpload") {
				errs = append(errs, fmt.Errorf("s3: aborting upload of %s: %w", up.Key, err))
			}
		}
	}
	return errors.Join(errs...)
}

// isNotFound reports whether err says the object does not exist.
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || (r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket" && r.Code != "NoSuchUpload")
}

func isCode(err error, code string) bool {
	return err != nil && minio.ToErrorResponse(err).Code == code
}
