package chat

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard/switchboard/protocol"
)

// Asset is what the server knows of an uploaded file: its bytes are a blob
// named by Hash (package assets); this record says who owns it and what
// it is. Stored as the state record as/<id>.
type Asset struct {
	ID         string `json:"asset_id"`
	Owner      string `json:"-"`
	Hash       string `json:"sha256"` // hex
	Size       int64  `json:"size"`
	Mime       string `json:"mime"`
	Kind       string `json:"kind"` // image, video, audio or file
	Name       string `json:"name,omitempty"`
	Created    int64  `json:"-"`
	Thumb      string `json:"thumbnail,omitempty"` // the asset id of its thumbnail
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	// Parent is, for a thumbnail, the asset it shows: it lives and dies
	// with it.
	Parent string `json:"-"`
}

// assetRecord is the stored form: the wire fields and the private ones.
type assetRecord struct {
	Asset
	Owner   string `json:"owner"`
	Created int64  `json:"created"`
	Parent  string `json:"parent,omitempty"`
	// Sent: the asset went out in a message. Until then, and unless it
	// is pinned, the collector deletes it once Config.UnsentExpiry passes.
	Sent bool `json:"sent,omitempty"`
	// Pins counts the profiles and groups whose photo or icon it is:
	// neither collected nor expired while pinned.
	Pins int `json:"pins,omitempty"`
}

func (rec *assetRecord) asset() Asset {
	a := rec.Asset
	a.Owner, a.Created, a.Parent = rec.Owner, rec.Created, rec.Parent
	return a
}

// Errors of asset requests.
var (
	// ErrAssetNotFound: the asset does not exist or the user may not use
	// it. The two are one error, so that asset ids cannot be probed.
	ErrAssetNotFound = &protocol.Error{Code: protocol.CodeNotFound, Message: "no such asset"}
	// ErrAssetInUse: the owner deletes an asset that is their profile
	// photo or a group's icon.
	ErrAssetInUse = &protocol.Error{Code: protocol.CodeInUse, Message: "the asset is a profile photo or group icon: replace it first"}
	// ErrAssetKept: the collector's reason to delete an asset no longer
	// holds (it was sent or pinned meanwhile).
	ErrAssetKept = errors.New("switchboard: the asset is in use: not collected")
	// ErrBlobGone: the blob an upload was stored as may have been deleted
	// by the collector while the upload ran (it was unused until then).
	// Nothing was recorded; store the bytes again and retry.
	ErrBlobGone = errors.New("switchboard: the upload's blob was collected meanwhile: store it again")
	// ErrBlobInUse: the collector may not delete the blob (yet).
	ErrBlobInUse = errors.New("switchboard: the blob is in use or not unused for long enough")
)

// PutFence bounds how long before its record an upload's blob Put may
// have begun (Request.PutAt): the collector's tombstones of deleted blobs
// are kept that long, so that a Put that found a blob just before it was
// deleted is told so (ErrBlobGone) rather than recorded over nothing.
const PutFence = 24 * time.Hour

// FenceSlack covers clocks that disagree between the processes that put
// blobs and the one that commits: a Put that began within FenceSlack after
// a blob's deletion is refused as if it began before (ErrBlobGone), and
// succeeds when tried again after FenceSlack. Clocks of the processes must
// agree to better than this (NTP does).
const FenceSlack = 2 * time.Second

// State record keys of assets.
//
//	as/<id>                  the asset record (JSON assetRecord)
//	ag/<id>\x00<grantee>     grants: a user it was sent to, #<group>, or * (a profile photo: everyone)
//	ah/<hash>                how many assets use the blob (uint64)
//	ahx/<hash>\x00<id>       the assets of a blob
//	aq/<user>                bytes of the user's assets (uint64), for the quota
//	au/<created>\x00<id>     assets never sent nor pinned, by creation time (the unsent collector)
//	at/<created>\x00<id>     every asset but thumbnails, by creation time (media retention)
//	az/<hash>                a blob no asset uses: condemned, being deleted or deleted (blobState)
func assetKey(id string) string { return "as/" + id }

func grantPrefix(id string) string { return "ag/" + id + "\x00" }

// grantEveryone is the grantee of a profile photo.
const grantEveryone = "*"

func hashRefsKey(hash string) string { return "ah/" + hash }

func byHashPrefix(hash string) string { return "ahx/" + hash + "\x00" }

func usageKey(user string) string { return "aq/" + user }

const (
	unsentPrefix = "au/"
	agePrefix    = "at/"
	blobPrefix   = "az/"
)

// timeKey is prefix, ms as 16 hex digits (so that keys sort by time), a
// NUL and id.
func timeKey(prefix string, ms int64, id string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	return prefix + hex.EncodeToString(b[:]) + "\x00" + id
}

func parseTimeKey(prefix string, k []byte) (ms int64, id string, ok bool) {
	rest := k[len(prefix):]
	if len(rest) < 17 || rest[16] != 0 {
		return 0, "", false
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], rest[:16]); err != nil {
		return 0, "", false
	}
	return int64(binary.BigEndian.Uint64(b[:])), string(rest[17:]), true
}

// Catalog answers the read-only questions about assets from durable
// state: what a gateway's asset API asks without going through the
// committer. A Service embeds one over its store; a gateway of a
// distributed deployment makes its own over the shared store.
type Catalog struct{ store Store }

// NewCatalog returns a Catalog reading store.
func NewCatalog(store Store) *Catalog { return &Catalog{store: store} }

// AssetsByHash returns the ids of the assets whose bytes hash to hash.
// Callers must filter them by access (MayRead) before telling anyone.
// Safe for concurrent use.
func (s *Catalog) AssetsByHash(ctx context.Context, hash string) ([]string, error) {
	prefix := byHashPrefix(hash)
	var ids []string
	err := s.store.ScanState(ctx, prefix, func(k, _ []byte) error {
		ids = append(ids, string(k[len(prefix):]))
		return nil
	})
	return ids, err
}

// AssetUsage returns the bytes user's assets add up to. Safe for
// concurrent use.
func (s *Catalog) AssetUsage(ctx context.Context, user string) (int64, error) {
	var n int64
	_, err := s.store.GetState(ctx, usageKey(user), func(v []byte) { n = int64(decodeCount(v)) })
	return n, err
}

// GetAsset returns asset id as stored, or ErrAssetNotFound. Safe for
// concurrent use.
func (s *Catalog) GetAsset(ctx context.Context, id string) (Asset, error) {
	var rec assetRecord
	var decErr error
	found, err := s.store.GetState(ctx, assetKey(id), func(v []byte) { decErr = json.Unmarshal(v, &rec) })
	switch {
	case err != nil:
		return Asset{}, err
	case !found:
		return Asset{}, ErrAssetNotFound
	case decErr != nil:
		return Asset{}, fmt.Errorf("switchboard: asset %s record: %w", id, decErr)
	}
	return rec.asset(), nil
}

// MayRead returns asset id if user may download it: its owner, a user it
// was sent to, a current member of a group it was sent to (or whose icon
// it is), or anyone for a profile photo; a thumbnail, whoever may read
// the asset it shows. Otherwise, and for a missing
// asset alike, ErrAssetNotFound. It reads durable state only. Safe for
// concurrent use.
func (s *Catalog) MayRead(ctx context.Context, id, user string) (Asset, error) {
	a, err := s.GetAsset(ctx, id)
	if err != nil || a.Owner == user {
		return a, err
	}
	// A thumbnail is readable by whoever may read the asset it shows.
	grantsOf := id
	if a.Parent != "" {
		grantsOf = a.Parent
	}
	ok, err := granted(ctx, s.store, grantsOf, user, storeMember(s.store, user))
	if err != nil {
		return Asset{}, err
	}
	if !ok {
		return Asset{}, ErrAssetNotFound
	}
	return a, nil
}

// storeMember returns a membership check of user in a group that reads
// the group's durable record.
func storeMember(store Store, user string) func(ctx context.Context, group string) (bool, error) {
	return func(ctx context.Context, group string) (bool, error) {
		var rec groupRecord
		var decErr error
		found, err := store.GetState(ctx, groupKey(group), func(v []byte) { decErr = json.Unmarshal(v, &rec) })
		if err != nil || !found || decErr != nil {
			return false, errors.Join(err, decErr)
		}
		for _, m := range rec.Members {
			if m.User == user {
				return true, nil
			}
		}
		return false, nil
	}
}

// granted reports whether asset id was sent to user, is a profile photo,
// or was sent to a group for which member says user is in it.
func granted(ctx context.Context, store Store, id, user string, member func(ctx context.Context, group string) (bool, error)) (bool, error) {
	prefix := grantPrefix(id)
	for _, grantee := range []string{user, grantEveryone} {
		if found, err := store.GetState(ctx, prefix+grantee, func([]byte) {}); err != nil || found {
			return found, err
		}
	}
	var groups []string
	err := store.ScanState(ctx, prefix+"#", func(k, _ []byte) error {
		groups = append(groups, string(k[len(prefix)+1:]))
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, g := range groups {
		if ok, err := member(ctx, g); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// ExpiredAssets lists up to limit assets that the collector may delete:
// those never sent nor pinned and created before unsentBefore, and, if
// createdBefore is not zero, every unpinned one created before it (media
// retention); both unix ms. Each is checked again when its deletion
// commits (Request.Collect). Safe for concurrent use.
func (s *Catalog) ExpiredAssets(ctx context.Context, unsentBefore, createdBefore int64, limit int) ([]string, error) {
	var ids []string
	seen := make(map[string]bool)
	scan := func(prefix string, before int64) error {
		if before <= 0 {
			return nil
		}
		err := s.store.ScanState(ctx, prefix, func(k, _ []byte) error {
			ms, id, ok := parseTimeKey(prefix, k)
			if !ok {
				return nil
			}
			if ms >= before || len(ids) >= limit {
				return errStopScan
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
			return nil
		})
		if errors.Is(err, errStopScan) {
			err = nil
		}
		return err
	}
	if err := scan(unsentPrefix, unsentBefore); err != nil {
		return nil, err
	}
	return ids, scan(agePrefix, createdBefore)
}

var errStopScan = errors.New("stop")

// BlobStatus is where an unused blob is on its way out.
type BlobStatus byte

// Blob statuses.
const (
	BlobCondemned BlobStatus = 'c' // no asset uses it since Since
	BlobDeleting  BlobStatus = 'd' // the collector claimed it at Since and deletes it
	BlobDeleted   BlobStatus = 'x' // deleted at Since: a tombstone (PutFence)
)

// BlobState is an unused blob's status.
type BlobState struct {
	Hash   string
	Status BlobStatus
	Since  int64 // unix ms
}

func decodeBlobState(hash string, v []byte) (BlobState, bool) {
	if len(v) != 9 {
		return BlobState{}, false
	}
	return BlobState{Hash: hash, Status: BlobStatus(v[0]), Since: int64(binary.BigEndian.Uint64(v[1:]))}, true
}

func (b BlobState) encode() []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(b.Status)}, uint64(b.Since))
}

// UnusedBlobs lists up to limit blobs that no asset uses, for the
// collector. Safe for concurrent use.
func (s *Catalog) UnusedBlobs(ctx context.Context, limit int) ([]BlobState, error) {
	var out []BlobState
	err := s.store.ScanState(ctx, blobPrefix, func(k, v []byte) error {
		if len(out) >= limit {
			return errStopScan
		}
		if st, ok := decodeBlobState(string(k[len(blobPrefix):]), v); ok {
			out = append(out, st)
		}
		return nil
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return out, err
}

// Collect is the collector's reason to delete an asset (KindAssetDelete),
// checked again when the deletion commits; unix ms, 0 for none.
type Collect struct {
	UnsentBefore  int64 // never sent nor pinned, and created before this
	CreatedBefore int64 // not pinned, and created before this (media retention)
}

// BlobStep is a step of the collector's deletion of an unused blob
// (KindBlob): claim it, delete it, record that it was deleted, forget.
type BlobStep uint8

// Blob steps.
const (
	// BlobClaim: the blob is still unused, and was condemned before
	// Sweep.Before (or a claim is unfinished): mark it deleting. Uploads
	// of its bytes are refused from now on (ErrBlobGone). Else
	// ErrBlobInUse.
	BlobClaim BlobStep = iota + 1
	// BlobSwept: the collector deleted it: keep a tombstone.
	BlobSwept
	// BlobForget: drop its tombstone if older than Sweep.Before.
	BlobForget
)

// Sweep is a KindBlob request's blob and step.
type Sweep struct {
	Hash   string
	Step   BlobStep
	Before int64 // unix ms
}

// The committer's view of asset state. The committer reads the records
// it writes through s.state, so that a batch built before the one before
// it is applied sees what that one wrote.

// stateVal is a cached state record; !ok: there is none.
type stateVal struct {
	v  []byte
	ok bool
}

func (s *Service) getState(ctx context.Context, key string) ([]byte, bool, error) {
	if sv, ok := s.state.get(key); ok {
		return sv.v, sv.ok, nil
	}
	var v []byte
	found, err := s.store.GetState(ctx, key, func(b []byte) { v = bytes.Clone(b) })
	if err != nil {
		return nil, false, err
	}
	if found && v == nil {
		v = []byte{}
	}
	s.state.put(key, stateVal{v, found})
	return v, found, nil
}

// setState writes key in b's batch; nil deletes it.
func (s *Service) setState(b *building, key string, v []byte) {
	b.c.batch.State = append(b.c.batch.State, KV{Key: key, Value: v})
	s.state.put(key, stateVal{v, v != nil})
}

func decodeCount(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (s *Service) count(ctx context.Context, key string) (uint64, error) {
	v, _, err := s.getState(ctx, key)
	return decodeCount(v), err
}

// setCount writes a counter; zero deletes it.
func (s *Service) setCount(b *building, key string, n uint64) {
	var v []byte
	if n > 0 {
		v = binary.BigEndian.AppendUint64(nil, n)
	}
	s.setState(b, key, v)
}

// assetRec reads asset id's record, or ErrAssetNotFound.
func (s *Service) assetRec(ctx context.Context, id string) (*assetRecord, error) {
	v, found, err := s.getState(ctx, assetKey(id))
	return decodeAssetRec(id, v, found, err)
}

// readAssetRec reads asset id's durable record, or ErrAssetNotFound.
func readAssetRec(ctx context.Context, store Store, id string) (*assetRecord, error) {
	var v []byte
	found, err := store.GetState(ctx, assetKey(id), func(b []byte) { v = bytes.Clone(b) })
	return decodeAssetRec(id, v, found, err)
}

func decodeAssetRec(id string, v []byte, found bool, err error) (*assetRecord, error) {
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrAssetNotFound
	}
	rec := new(assetRecord)
	if err := json.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("switchboard: asset %s record: %w", id, err)
	}
	return rec, nil
}

func (s *Service) putAssetRec(b *building, rec *assetRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.setState(b, assetKey(rec.ID), v)
	return nil
}

// addAsset records a new asset (KindAsset): its record and one more
// reference to its blob.
func (s *Service) addAsset(ctx context.Context, b *building, r *Request) error {
	a := r.Asset
	if a == nil || a.ID == "" || a.Hash == "" || strings.ContainsRune(a.ID, 0) || strings.ContainsRune(a.Hash, 0) {
		return badRequest("an asset needs an id and a hash")
	}
	if _, found, err := s.getState(ctx, assetKey(a.ID)); err != nil || found {
		return errors.Join(err, badRequest("asset id in use"))
	}
	if a.Parent != "" {
		parent, err := s.assetRec(ctx, a.Parent)
		if err != nil {
			return err // deleted meanwhile: no thumbnail for it
		}
		if parent.Owner != r.From {
			return ErrAssetNotFound
		}
	}
	if err := s.fenceBlob(ctx, b, a.Hash, r.PutAt); err != nil {
		return err
	}
	refs, err := s.count(ctx, hashRefsKey(a.Hash))
	if err != nil {
		return err
	}
	used, err := s.count(ctx, usageKey(r.From))
	if err != nil {
		return err
	}
	rec := &assetRecord{Asset: *a, Owner: r.From, Created: b.now.UnixMilli(), Parent: a.Parent}
	if err := s.putAssetRec(b, rec); err != nil {
		return err
	}
	s.setCount(b, hashRefsKey(a.Hash), refs+1)
	s.setCount(b, usageKey(r.From), used+uint64(max(a.Size, 0)))
	s.setState(b, byHashPrefix(a.Hash)+a.ID, []byte{})
	if a.Parent == "" {
		s.setState(b, timeKey(unsentPrefix, rec.Created, a.ID), []byte{})
		s.setState(b, timeKey(agePrefix, rec.Created, a.ID), []byte{})
	}
	if b.events {
		b.analytics(r.From, NewEvent("asset.uploaded", r.From, b.now.UnixMilli()).Str("asset_id", a.ID).
			Str("kind", a.Kind).Int("bytes", a.Size))
	}
	return nil
}

// fenceBlob checks that blob hash, which an upload's Put found or stored
// from putAt on, was not deleted by the collector since (ErrBlobGone), and
// takes it off the collector's list: an asset uses it again.
func (s *Service) fenceBlob(ctx context.Context, b *building, hash string, putAt int64) error {
	now := b.now.UnixMilli()
	if putAt == 0 {
		putAt = now
	}
	if putAt < now-PutFence.Milliseconds() {
		return ErrBlobGone // older than any tombstone kept
	}
	v, found, err := s.getState(ctx, blobPrefix+hash)
	if err != nil || !found {
		return err
	}
	st, _ := decodeBlobState(hash, v)
	switch st.Status {
	case BlobDeleting:
		return ErrBlobGone
	case BlobDeleted:
		if putAt <= st.Since+FenceSlack.Milliseconds() {
			return ErrBlobGone // the Put may have found the blob before it went
		}
	}
	s.setState(b, blobPrefix+hash, nil)
	return nil
}

// setAssetMedia records what the asset worker found out about an asset
// (KindAssetMedia): its thumbnail's asset id and its dimensions or
// duration. Messages sent afterwards carry them. A thumbnail it replaces
// is deleted.
func (s *Service) setAssetMedia(ctx context.Context, b *building, r *Request) error {
	m := r.Asset
	if m == nil {
		return badRequest("no asset")
	}
	rec, err := s.assetRec(ctx, m.ID)
	if err != nil {
		return err
	}
	if m.Thumb != "" && m.Thumb != rec.Thumb {
		t, err := s.assetRec(ctx, m.Thumb)
		if err != nil {
			return err
		}
		if t.Parent != rec.ID {
			return badRequest("a thumbnail must be recorded with its asset as parent")
		}
		if rec.Thumb != "" {
			if err := s.dropThumb(ctx, b, rec.Thumb); err != nil {
				return err
			}
		}
	}
	rec.Thumb, rec.Width, rec.Height, rec.DurationMS = m.Thumb, m.Width, m.Height, m.DurationMS
	return s.putAssetRec(b, rec)
}

func (s *Service) dropThumb(ctx context.Context, b *building, id string) error {
	t, err := s.assetRec(ctx, id)
	if errors.Is(err, ErrAssetNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.dropAsset(ctx, b, t)
}

// deleteAsset deletes an asset (KindAssetDelete): its owner's request, or
// the collector's (r.Collect), whose reason is checked again here.
func (s *Service) deleteAsset(ctx context.Context, b *building, r *Request) error {
	rec, err := s.assetRec(ctx, string(r.AssetID))
	if err != nil {
		return err
	}
	if c := r.Collect; c != nil {
		unsent := !rec.Sent && rec.Created < c.UnsentBefore
		old := rec.Created < c.CreatedBefore
		if rec.Pins > 0 || rec.Parent != "" || (!unsent && !old) {
			return ErrAssetKept
		}
	} else {
		if rec.Owner != r.From || rec.Parent != "" {
			return ErrAssetNotFound
		}
		if rec.Pins > 0 {
			return ErrAssetInUse
		}
	}
	if err := s.dropAsset(ctx, b, rec); err != nil {
		return err
	}
	if b.events {
		by := r.From
		if by == "" {
			by = rec.Owner
		}
		b.analytics(by, NewEvent("asset.deleted", rec.Owner, b.now.UnixMilli()).Str("asset_id", rec.ID).
			Bool("collected", r.Collect != nil))
	}
	return nil
}

// dropAsset deletes rec, its thumbnail, its grants and indexes, gives its
// bytes back to its owner's quota, and condemns its blob if no other asset
// uses it.
func (s *Service) dropAsset(ctx context.Context, b *building, rec *assetRecord) error {
	if rec.Thumb != "" {
		if err := s.dropThumb(ctx, b, rec.Thumb); err != nil {
			return err
		}
	}
	// Grants: those in batches not yet applied are not seen here; they
	// would be orphans, read by nobody (ids are never reused).
	prefix := grantPrefix(rec.ID)
	var grants []string
	err := s.store.ScanState(ctx, prefix, func(k, _ []byte) error {
		grants = append(grants, string(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range grants {
		s.setState(b, k, nil)
	}
	s.setState(b, assetKey(rec.ID), nil)
	s.setState(b, byHashPrefix(rec.Hash)+rec.ID, nil)
	if rec.Parent == "" {
		s.setState(b, timeKey(unsentPrefix, rec.Created, rec.ID), nil)
		s.setState(b, timeKey(agePrefix, rec.Created, rec.ID), nil)
	}
	used, err := s.count(ctx, usageKey(rec.Owner))
	if err != nil {
		return err
	}
	s.setCount(b, usageKey(rec.Owner), used-min(used, uint64(max(rec.Size, 0))))
	refs, err := s.count(ctx, hashRefsKey(rec.Hash))
	if err != nil {
		return err
	}
	if refs > 1 {
		s.setCount(b, hashRefsKey(rec.Hash), refs-1)
		return nil
	}
	s.setCount(b, hashRefsKey(rec.Hash), 0)
	s.setState(b, blobPrefix+rec.Hash, BlobState{Status: BlobCondemned, Since: b.now.UnixMilli()}.encode())
	return nil
}

// blobStep runs a step of the collector's deletion of a blob (KindBlob).
func (s *Service) blobStep(ctx context.Context, b *building, r *Request) error {
	sw := r.Sweep
	if sw == nil || sw.Hash == "" {
		return badRequest("no blob")
	}
	key := blobPrefix + sw.Hash
	v, found, err := s.getState(ctx, key)
	if err != nil {
		return err
	}
	st, ok := decodeBlobState(sw.Hash, v)
	if !found || !ok {
		return ErrBlobInUse
	}
	now := b.now.UnixMilli()
	switch sw.Step {
	case BlobClaim:
		refs, err := s.count(ctx, hashRefsKey(sw.Hash))
		if err != nil {
			return err
		}
		if refs > 0 || st.Status == BlobDeleted || (st.Status == BlobCondemned && st.Since >= sw.Before) {
			return ErrBlobInUse
		}
		s.setState(b, key, BlobState{Status: BlobDeleting, Since: now}.encode())
	case BlobSwept:
		if st.Status != BlobDeleting {
			return ErrBlobInUse
		}
		s.setState(b, key, BlobState{Status: BlobDeleted, Since: now}.encode())
	case BlobForget:
		if st.Status != BlobDeleted || st.Since >= sw.Before {
			return ErrBlobInUse
		}
		s.setState(b, key, nil)
	default:
		return badRequest("unknown blob step")
	}
	return nil
}

// attach checks that r.From may send asset r.AssetID and returns the
// attachment object for the msg frame and the asset's record. The grants
// for the recipients are added by grant once the message is accepted.
func (s *Service) attach(ctx context.Context, r *Request) ([]byte, *assetRecord, error) {
	id := string(r.AssetID)
	// Asset records and groups are ControlPartition's: another partition
	// reads them from the store, never from a cache of its own.
	rec, err := s.assetRec(ctx, id)
	member := func(_ context.Context, gid string) (bool, error) {
		g, err := s.group(ctx, gid)
		if errors.Is(err, ErrGroupNotFound) {
			return false, nil
		}
		return err == nil && g.members[r.From] != nil, err
	}
	if !s.control() {
		rec, err = readAssetRec(ctx, s.store, id)
		member = storeMember(s.store, r.From)
	}
	if err != nil {
		return nil, nil, err
	}
	if rec.Owner != r.From {
		ok, err := granted(ctx, s.store, id, r.From, member)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, ErrAssetNotFound
		}
	}
	att, err := json.Marshal(rec.Asset)
	return att, rec, err
}

// grant lets the recipients of a message download its attachment: the
// user it went to, or every member of the group (checked when they fetch,
// so members who leave lose access). The asset is sent from now on: the
// unsent collector leaves it alone.
func (s *Service) grant(b *building, rec *assetRecord, to string, group *groupState) error {
	key := grantPrefix(rec.ID) + to
	if group != nil {
		key = grantPrefix(rec.ID) + "#" + group.id
	}
	s.setState(b, key, []byte{})
	if rec.Sent {
		return nil
	}
	if !s.control() {
		// The record is ControlPartition's to write.
		b.forwardAssetSent(rec.ID)
		return nil
	}
	return s.setSent(b, rec)
}

func (s *Service) setSent(b *building, rec *assetRecord) error {
	rec.Sent = true
	s.setState(b, timeKey(unsentPrefix, rec.Created, rec.ID), nil)
	return s.putAssetRec(b, rec)
}

// markSent records that asset id was sent, for another partition's send
// (forwarded). An asset deleted since is left alone.
func (s *Service) markSent(ctx context.Context, b *building, id string) error {
	rec, err := s.assetRec(ctx, id)
	if errors.Is(err, ErrAssetNotFound) || err == nil && rec.Sent {
		return nil
	}
	if err != nil {
		return err
	}
	return s.setSent(b, rec)
}

// pin makes asset id, which user owns and which must be an image, a
// profile photo (grantee *) or a group's icon (#<group>).
func (s *Service) pin(ctx context.Context, b *building, id, user, grantee string) error {
	rec, err := s.assetRec(ctx, id)
	if err != nil {
		return err
	}
	if err := pinnable(rec, user); err != nil {
		return err
	}
	rec.Pins++
	s.setState(b, grantPrefix(id)+grantee, []byte{})
	// Neither collected nor expired while pinned.
	s.setState(b, timeKey(unsentPrefix, rec.Created, rec.ID), nil)
	s.setState(b, timeKey(agePrefix, rec.Created, rec.ID), nil)
	return s.putAssetRec(b, rec)
}

// pinnable reports why rec cannot be user's photo or icon, or nil.
func pinnable(rec *assetRecord, user string) error {
	if rec.Owner != user || rec.Parent != "" {
		return ErrAssetNotFound
	}
	if rec.Kind != "image" {
		return badRequest("a photo or icon must be an image")
	}
	return nil
}

// checkPin is pin's check, on the durable record, for a partition that
// forwards the pin to ControlPartition.
func checkPin(ctx context.Context, store Store, id, user string) error {
	rec, err := readAssetRec(ctx, store, id)
	if err != nil {
		return err
	}
	return pinnable(rec, user)
}

// unpin undoes pin. A profile photo stops being everyone's to read; an
// asset neither pinned nor ever sent is deleted (a replaced photo), one
// sent expires again with the media retention. A former group icon that
// survives stays readable by the group's members: its grant #<group> may
// as well come from a message sent to the group, and they saw it anyway.
func (s *Service) unpin(ctx context.Context, b *building, id, grantee string) error {
	rec, err := s.assetRec(ctx, id)
	if errors.Is(err, ErrAssetNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if grantee == grantEveryone {
		s.setState(b, grantPrefix(id)+grantee, nil)
	}
	rec.Pins = max(rec.Pins-1, 0)
	switch {
	case rec.Pins > 0:
	case !rec.Sent:
		return s.dropAsset(ctx, b, rec)
	default:
		s.setState(b, timeKey(agePrefix, rec.Created, rec.ID), []byte{})
	}
	return s.putAssetRec(b, rec)
}
