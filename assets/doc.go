// Package assets is the core of image, video and file sharing: the
// content-addressed blob store that holds the bytes of every asset, and
// (to come) the asset service that uploads, authorizes and serves them.
//
// Blobs are named by the SHA-256 of their content. A store keeps one copy
// per hash however many times the same bytes are uploaded: deduplication
// is silent, after the upload, so that a client never learns from the
// server whether someone else has uploaded a file (docs/assets.md).
//
// Backends: a local directory (backends/blobdir, the embedded default)
// and an S3-compatible object store (backends/s3). Both pass the
// conformance suite in assets/blobtest.
package assets
