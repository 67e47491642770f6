package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/chat"
)

// StreamAssets is the bus stream of uploads: one event per recorded
// asset, keyed by its owner, whose value is the asset id. The asset
// worker consumes it (Kafka's topic of the same name later).
const StreamAssets = "assets"

// Worker is the asset worker: for each uploaded image it makes a JPEG
// thumbnail (stored as an asset of its own) and records the image's
// dimensions, for the attachments of the messages sent afterwards. For
// video it does the same when ffmpeg is installed, and nothing otherwise.
// Its Handle is a chat.StreamHandler for StreamAssets.
type Worker struct {
	blobs assets.Blobs
	cat   Catalog
	opts  assets.ThumbOptions
	log   *slog.Logger
	limit int64 // the largest thumbnail stored
}

// NewWorker returns a worker writing thumbnails to blobs and recording
// them through cat.
func NewWorker(blobs assets.Blobs, cat Catalog, opts assets.ThumbOptions, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{blobs: blobs, cat: cat, opts: opts, log: log, limit: 8 << 20}
}

// Handle processes one upload event. Failures are logged: an asset
// without a thumbnail is still a whole asset.
func (w *Worker) Handle(_ string, value []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.process(ctx, string(value)); err != nil {
		w.log.Warn("asset worker: no thumbnail", "asset", string(value), "err", err)
	}
}

// process makes asset id's thumbnail, if it is an image (or a video and
// ffmpeg is there).
func (w *Worker) process(ctx context.Context, id string) error {
	a, err := w.cat.GetAsset(ctx, id)
	if err != nil {
		return err
	}
	hash, err := assets.ParseHash(a.Hash)
	if err != nil {
		return err
	}
	var thumb assets.Thumb
	switch a.Kind {
	case "image":
		rc, err := w.blobs.Read(ctx, hash, 0, -1)
		if err != nil {
			return err
		}
		thumb, err = assets.Thumbnail(rc, w.opts)
		rc.Close()
		if err != nil {
			return err
		}
	case "video":
		thumb, err = w.videoThumbnail(ctx, hash)
		if errors.Is(err, assets.ErrNoFFmpeg) {
			return nil // said in docs/assets.md: no video thumbnails without ffmpeg
		}
		if err != nil {
			return err
		}
	default:
		return nil
	}
	// The thumbnail is an asset whose parent is a: it goes when a goes.
	t := &chat.Asset{ID: assets.NewID(), Mime: "image/jpeg", Kind: "image", Parent: a.ID}
	err = w.put(ctx, a.Owner, t, func() io.Reader { return bytes.NewReader(thumb.JPEG) })
	if err != nil {
		return err
	}
	m := &chat.Asset{ID: a.ID, Thumb: t.ID, Width: thumb.Original.Width, Height: thumb.Original.Height}
	return submit(ctx, w.cat, &chat.Request{Kind: chat.KindAssetMedia, From: a.Owner, Asset: m})
}

// put stores what open yields as asset t of owner's, once more if the
// collector deleted the blob while it was put (chat.ErrBlobGone).
func (w *Worker) put(ctx context.Context, owner string, t *chat.Asset, open func() io.Reader) error {
	for try := 0; ; try++ {
		putAt := time.Now().UnixMilli()
		blob, err := w.blobs.Put(ctx, open(), w.limit)
		if err != nil {
			return err
		}
		t.Hash, t.Size = blob.Hash.String(), blob.Size
		err = submit(ctx, w.cat, &chat.Request{Kind: chat.KindAsset, From: owner, Asset: t, PutAt: putAt})
		if !errors.Is(err, chat.ErrBlobGone) || try > 0 {
			return err
		}
	}
}

// videoThumbnail copies the video to a temporary file for ffmpeg.
func (w *Worker) videoThumbnail(ctx context.Context, hash assets.Hash) (assets.Thumb, error) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return assets.Thumb{}, assets.ErrNoFFmpeg // before copying the video for nothing
	}
	rc, err := w.blobs.Read(ctx, hash, 0, -1)
	if err != nil {
		return assets.Thumb{}, err
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "switchboard-video-*")
	if err != nil {
		return assets.Thumb{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.ReadFrom(rc); err != nil {
		return assets.Thumb{}, err
	}
	return assets.VideoThumbnail(ctx, f.Name(), w.opts)
}

// submitter is the chat core's Submit.
type submitter interface {
	Submit(r *chat.Request) error
}

// submit sends r to the chat core and waits for its result.
func submit(ctx context.Context, cat submitter, r *chat.Request) error {
	d := make(done, 1)
	r.Done = d
	if err := cat.Submit(r); err != nil {
		return err
	}
	select {
	case res := <-d:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}
