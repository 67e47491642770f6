// Package s3 is an assets.Blobs in a bucket of an S3-compatible object
// store (AWS S3, MinIO, Ceph RGW, the Versity gateway, ...).
//
// # Keys
//
// Under Options.Prefix, in Options.Bucket (Open creates it if missing):
//
//	<prefix>blobs/<aa>/<hash>   a blob: <hash> is the 64 hex digits of its
//	                            SHA-256, <aa> their first two; the object's
//	                            content is the blob's, nothing else is set
//	<prefix>tmp/<random>        a Put of more than one part in progress
//	                            (32 hex digits); also its multipart upload
//
// # Put
//
// Put reads the content a part (Options.PartSize, 16 MiB by default) at a
// time into one pooled buffer, hashing it and counting it against the
// limit: memory per concurrent Put is one PartSize, whatever the size of
// the blob. Reading one byte over the limit fails with ErrTooLarge.
//
//   - Content that fits in one part (most assets) is known, with its hash,
//     before anything is sent. If its blob key exists, Put stops there
//     (dedup); otherwise it is stored with one PUT straight to its blob key.
//     S3 makes an object visible only once its PUT has completed, so
//     nothing partial is ever served, and a PUT that fails or is cancelled
//     leaves nothing.
//   - Larger content is uploaded as a multipart upload to a temporary key,
//     one part at a time; the hash is known when the reader ends. Put then
//     completes the upload, skips the copy if the blob key exists (dedup),
//     else copies the temporary object to the blob key server-side
//     (CopyObject up to 5 GiB; a multipart copy, UploadPartCopy, beyond),
//     and removes the temporary object. A copy too appears only once
//     complete.
//
// On any failure, including the reader's error, ErrTooLarge and the end of
// the context, Put aborts the multipart upload or removes the temporary
// object, on a context detached from the caller's (bounded to a minute),
// so a cancelled Put still cleans up. Only a process that dies mid-Put
// leaves temporary state; SweepTemp, or a bucket lifecycle rule on
// <prefix>tmp/ (expire objects and abort incomplete multipart uploads
// after a day), removes it.
//
// Integrity: over HTTP, minio-go signs every chunk of a PUT (the server
// checks each chunk's SHA-256); over HTTPS, a single-part PUT carries the
// content's SHA-256 in x-amz-content-sha256, which the server checks.
//
// # Consistency
//
// S3 (AWS since December 2020, and the other servers named above) is
// strongly consistent for a key: once Put returns, Stat and Read see the
// blob from any client. Two concurrent Puts of the same content may both
// write its blob key; the content is the same, and each write is atomic,
// so readers see one complete copy either way. A Delete concurrent with a
// Put of the same content may remove the blob that Put then reports as
// stored (Put's dedup saw it before the Delete): callers that delete must
// order deletes against their own references to the hash, as with any
// Blobs.
//
// # Reads
//
// Stat is one HEAD. Read is one GET, ranged unless it asks for the whole
// blob; S3 answers 416 for a range starting at or past the end, and Read
// then issues a HEAD to tell off == size (an empty reader) from off > size
// (ErrRange). A missing key is assets.ErrNotFound. The returned reader
// streams the response body and is bound to the context passed to Read.
//
// # Limits
//
//   - A blob is at most 10,000 parts of PartSize: 156.25 GiB with the
//     default 16 MiB (assets are at most 2 GiB by default). Beyond it, Put
//     fails with ErrTooLarge.
//   - PartSize is in [5 MiB, 5 GiB], S3's bounds for a part.
//   - A Put of more than one part costs, besides its parts, a create, a
//     complete, a HEAD, a copy and a delete; a Put of one part costs a HEAD
//     and a PUT. The copy rewrites the blob once server-side.
//
// # Client
//
// The client is github.com/minio/minio-go/v7 (Apache-2.0), through its
// low-level Core API: it exposes the multipart calls one by one (so a Put
// holds exactly one pooled part buffer, where minio-go's own PutObject
// with an unknown size allocates a part buffer per call), ComposeObject
// does the copy beyond 5 GiB by itself, and it pulls in far fewer modules
// than aws-sdk-go-v2. minio-go retries failed requests itself (up to 10
// times, with backoff) before Put, Stat, Read or Delete see an error.
//
// Tests run against a real S3 server, the Versity S3 Gateway, which
// `make deps` installs (see gateway_test.go).
package s3
