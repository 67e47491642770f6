package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/assets/blobtest"
)

func TestBlobs(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) assets.Blobs { return open(t, options(t)) })
}

// The suite again with the smallest parts and no prefix, so that its
// 24 MiB blob takes five parts and keys start at the bucket's root.
func TestBlobsSmallParts(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) assets.Blobs {
		opts := options(t)
		opts.Prefix = ""
		opts.PartSize = MinPartSize
		return open(t, opts)
	})
}

func content(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// leftovers lists every object and multipart upload in the store's bucket.
func leftovers(t *testing.T, s *Store) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	for obj := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("listing %s: %v", s.bucket, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	for up := range s.core.ListIncompleteUploads(ctx, s.bucket, "", true) {
		if up.Err != nil {
			t.Fatalf("listing uploads in %s: %v", s.bucket, up.Err)
		}
		keys = append(keys, "upload:"+up.Key)
	}
	return keys
}

// failAfter yields n bytes of b, then err.
type failAfter struct {
	b   []byte
	n   int
	err error
	at  func() // called once, when the n bytes are consumed
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		if f.at != nil {
			f.at()
			f.at = nil
		}
		return 0, f.err
	}
	k := copy(p[:min(len(p), f.n)], f.b)
	f.b, f.n = f.b[k:], f.n-k
	return k, nil
}

// A Put that fails part way, in its first part or after several parts
// were uploaded, leaves nothing in the bucket: no blob, no temporary
// object, no multipart upload.
func TestPutInterrupted(t *testing.T) {
	boom := errors.New("connection dropped")
	b := content(1, 20<<20)
	for _, c := range []struct {
		name  string
		n     int   // bytes yielded before the error
		limit int64 // Put's limit
		want  error
	}{
		{"first part", 3000, 1 << 30, boom},
		{"third part", 12 << 20, 1 << 30, boom},
		{"over the limit in the third part", 20 << 20, 12 << 20, assets.ErrTooLarge},
		{"cancelled in the third part", 12 << 20, 1 << 30, context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := options(t)
			opts.PartSize = MinPartSize
			s := open(t, opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &failAfter{b: b, n: c.n, err: boom}
			if c.want == context.Canceled {
				r.at, r.err = cancel, io.EOF
			} else if c.want == assets.ErrTooLarge {
				r.err = io.EOF
			}
			if _, err := s.Put(ctx, r, c.limit); !errors.Is(err, c.want) {
				t.Fatalf("Put: %v, want %v", err, c.want)
			}
			if left := leftovers(t, s); len(left) != 0 {
				t.Fatalf("the failed Put left %q", left)
			}
			if _, err := s.Stat(context.Background(), sha256.Sum256(b[:c.n])); !errors.Is(err, assets.ErrNotFound) {
				t.Fatalf("Stat of the content read: %v, want ErrNotFound", err)
			}
		})
	}
}

// A Put whose context ends once its upload is complete under the
// temporary key, before the copy, removes the temporary object and
// stores no blob.
func TestPutCancelledBeforeCopy(t *testing.T) {
	opts := options(t)
	opts.PartSize = MinPartSize
	s := open(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tmp string
	s.uploaded = func(key string) {
		tmp = key
		if left := leftovers(t, s); !slices.Equal(left, []string{key}) {
			t.Errorf("after the upload, the bucket holds %q, want only %q", left, key)
		}
		cancel()
	}
	b := content(2, 7<<20)
	if _, err := s.Put(ctx, bytes.NewReader(b), 1<<30); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	if !strings.HasPrefix(tmp, "assets/tmp/") {
		t.Fatalf("temporary key %q, want it under assets/tmp/", tmp)
	}
	if left := leftovers(t, s); len(left) != 0 {
		t.Fatalf("the cancelled Put left %q", left)
	}
}

// Blobs are stored under <prefix>blobs/<aa>/<hash>, and nothing else
// stays in the bucket after Puts of one and of several parts.
func TestLayout(t *testing.T) {
	opts := options(t)
	opts.PartSize = MinPartSize
	s := open(t, opts)
	var want []string
	for i, n := range []int{10, 11 << 20} {
		blob, err := s.Put(context.Background(), bytes.NewReader(content(uint64(10+i), n)), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		x := blob.Hash.String()
		want = append(want, "assets/blobs/"+x[:2]+"/"+x)
	}
	slices.Sort(want)
	if got := leftovers(t, s); !slices.Equal(got, want) {
		t.Fatalf("bucket holds %q, want %q", got, want)
	}
}

// SweepTemp removes temporary objects and multipart uploads older than
// its age, and leaves blobs and younger temporary state.
func TestSweepTemp(t *testing.T) {
	s := open(t, options(t))
	ctx := context.Background()
	blob, err := s.Put(ctx, bytes.NewReader(content(3, 100)), 1000)
	if err != nil {
		t.Fatal(err)
	}
	tmp := s.tmpKey()
	if _, err := s.core.PutObject(ctx, s.bucket, tmp, bytes.NewReader([]byte("x")), 1, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.core.NewMultipartUpload(ctx, s.bucket, s.tmpKey(), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.SweepTemp(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := len(leftovers(t, s)); n != 3 {
		t.Fatalf("SweepTemp(1h) left %d keys, want all 3", n)
	}
	if err := s.SweepTemp(ctx, -time.Minute); err != nil {
		t.Fatal(err)
	}
	x := blob.Hash.String()
	if got, want := leftovers(t, s), []string{"assets/blobs/" + x[:2] + "/" + x}; !slices.Equal(got, want) {
		t.Fatalf("after SweepTemp(0) the bucket holds %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{Endpoint: "127.0.0.1:7070", Bucket: "b"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*Options)
	}{
		{"no endpoint", func(o *Options) { o.Endpoint = "" }},
		{"scheme", func(o *Options) { o.Endpoint = "http://127.0.0.1:7070" }},
		{"no bucket", func(o *Options) { o.Bucket = "" }},
		{"access key alone", func(o *Options) { o.AccessKey = "a" }},
		{"secret key alone", func(o *Options) { o.SecretKey = "s" }},
		{"absolute prefix", func(o *Options) { o.Prefix = "/x/" }},
		{"small parts", func(o *Options) { o.PartSize = MinPartSize - 1 }},
		{"large parts", func(o *Options) { o.PartSize = MaxPartSize + 1 }},
	} {
		o := ok
		c.edit(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", c.name, o)
		}
	}
}
