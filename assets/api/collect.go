package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/chat"
)

// Collector deletes what nobody uses any more: assets never sent (nor
// made a profile photo or group icon) once Config.UnsentExpiry has
// passed, every unpinned asset past Config.Retention (if set), and then
// the blobs that no asset uses, once Config.BlobGrace has passed.
//
// A blob is shared by every asset with its bytes, so deleting one races
// with uploads of the same bytes: an upload whose Put found the blob just
// before the collector deleted it would record an asset over nothing. The
// chat core fences it (docs/assets.md, "Collection"): the collector claims
// the blob there before deleting it and leaves a tombstone after, and an
// upload whose Put began before the tombstone is refused
// (chat.ErrBlobGone) and stores its bytes again.
type Collector struct {
	cfg   Config
	blobs assets.Blobs
	cat   CollectCatalog
	log   *slog.Logger

	once    sync.Once
	stop    chan struct{}
	done    chan struct{}
	started bool
}

// CollectCatalog is what the collector needs of the chat core:
// *chat.Service.
type CollectCatalog interface {
	Submit(r *chat.Request) error
	ExpiredAssets(ctx context.Context, unsentBefore, createdBefore int64, limit int) ([]string, error)
	UnusedBlobs(ctx context.Context, limit int) ([]chat.BlobState, error)
}

// CollectStats is what one pass of the collector deleted.
type CollectStats struct {
	Assets int   // asset records
	Blobs  int   // blobs
	Bytes  int64 // bytes of the blobs
}

// collectBatch bounds the assets or blobs one listing returns.
const collectBatch = 1000

// NewCollector returns a collector; Start runs it every
// Config.CollectInterval.
func NewCollector(cfg Config, blobs assets.Blobs, cat CollectCatalog, log *slog.Logger) (*Collector, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{cfg: cfg, blobs: blobs, cat: cat, log: log, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Start runs a pass at once and then every CollectInterval, until Close.
// Call it at most once, and not concurrently with Close.
func (c *Collector) Start() {
	c.started = true
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.cfg.CollectInterval)
		defer t.Stop()
		for {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-c.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			st, err := c.Collect(ctx, time.Now())
			cancel()
			switch {
			case err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, chat.ErrShuttingDown):
				c.log.Warn("asset collection failed; retrying next interval", "err", err, "assets", st.Assets, "blobs", st.Blobs)
			case st != CollectStats{}:
				c.log.Info("assets collected", "assets", st.Assets, "blobs", st.Blobs, "bytes", st.Bytes)
			}
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops a started collector and waits for its pass to end. Safe to
// call more than once, and without Start.
func (c *Collector) Close() error {
	c.once.Do(func() { close(c.stop) })
	if c.started {
		<-c.done
	}
	return nil
}

// Collect runs one pass as of now: deletes the expired assets, then the
// blobs unused for longer than BlobGrace, and forgets the tombstones that
// no upload can need. Safe for concurrent use (passes may overlap: each
// step is checked again where it commits).
func (c *Collector) Collect(ctx context.Context, now time.Time) (CollectStats, error) {
	var st CollectStats
	unsent := now.Add(-c.cfg.UnsentExpiry).UnixMilli()
	var created int64
	if c.cfg.Retention > 0 {
		created = now.Add(-c.cfg.Retention).UnixMilli()
	}
	collect := &chat.Collect{UnsentBefore: unsent, CreatedBefore: created}
	for {
		ids, err := c.cat.ExpiredAssets(ctx, unsent, created, collectBatch)
		if err != nil {
			return st, err
		}
		deleted := 0
		for _, id := range ids {
			err := submit(ctx, c.cat, &chat.Request{Kind: chat.KindAssetDelete, AssetID: []byte(id), Collect: collect})
			switch {
			case err == nil:
				deleted++
			case errors.Is(err, chat.ErrAssetKept), errors.Is(err, chat.ErrAssetNotFound):
			default:
				st.Assets += deleted
				return st, err
			}
		}
		st.Assets += deleted
		if len(ids) < collectBatch || deleted == 0 {
			break
		}
	}

	blobs, err := c.cat.UnusedBlobs(ctx, collectBatch*10)
	if err != nil {
		return st, err
	}
	grace := now.Add(-c.cfg.BlobGrace).UnixMilli()
	fence := now.Add(-chat.PutFence).UnixMilli()
	for _, b := range blobs {
		switch {
		case b.Status == chat.BlobDeleting || (b.Status == chat.BlobCondemned && b.Since < grace):
			n, err := c.sweep(ctx, b.Hash, grace)
			if errors.Is(err, chat.ErrBlobInUse) {
				continue
			}
			if err != nil {
				return st, err
			}
			st.Blobs++
			st.Bytes += n
		case b.Status == chat.BlobDeleted && b.Since < fence:
			err := submit(ctx, c.cat, &chat.Request{Kind: chat.KindBlob, Sweep: &chat.Sweep{Hash: b.Hash, Step: chat.BlobForget, Before: fence}})
			if err != nil && !errors.Is(err, chat.ErrBlobInUse) {
				return st, err
			}
		}
	}
	return st, nil
}

// sweep deletes the blob hash if the chat core still agrees that no asset
// uses it, and returns its size.
func (c *Collector) sweep(ctx context.Context, hash string, before int64) (int64, error) {
	h, err := assets.ParseHash(hash)
	if err != nil {
		return 0, chat.ErrBlobInUse // not a blob of ours: leave it
	}
	if err := submit(ctx, c.cat, &chat.Request{Kind: chat.KindBlob, Sweep: &chat.Sweep{Hash: hash, Step: chat.BlobClaim, Before: before}}); err != nil {
		return 0, err
	}
	var size int64
	if b, err := c.blobs.Stat(ctx, h); err == nil {
		size = b.Size
	}
	if err := c.blobs.Delete(ctx, h); err != nil {
		return 0, err // claimed: the next pass deletes it
	}
	err = submit(ctx, c.cat, &chat.Request{Kind: chat.KindBlob, Sweep: &chat.Sweep{Hash: hash, Step: chat.BlobSwept}})
	return size, err
}
