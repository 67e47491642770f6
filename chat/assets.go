package chat

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
}

// assetRecord is the stored form: the wire fields and the private ones.
type assetRecord struct {
	Asset
	Owner   string `json:"owner"`
	Created int64  `json:"created"`
}

// ErrAssetNotFound: the asset does not exist or the user may not use it.
// The two are one error, so that asset ids cannot be probed.
var ErrAssetNotFound = &protocol.Error{Code: protocol.CodeNotFound, Message: "no such asset"}

// State record keys of assets.
func assetKey(id string) string { return "as/" + id }

// grantPrefix lists the grants of an asset: ag/<id>\x00<user> for a user
// sent it in a one-to-one message, ag/<id>\x00#<group> for a group.
func grantPrefix(id string) string { return "ag/" + id + "\x00" }

// byHashPrefix indexes assets by the hash of their bytes:
// ahx/<hash>\x00<id>, for "do I already have access to this file?".
func byHashPrefix(hash string) string { return "ahx/" + hash + "\x00" }

// AssetsByHash returns the ids of the assets whose bytes hash to hash.
// Callers must filter them by access (MayRead) before telling anyone.
// Safe for concurrent use.
func (s *Service) AssetsByHash(ctx context.Context, hash string) ([]string, error) {
	prefix := byHashPrefix(hash)
	var ids []string
	err := s.store.ScanState(ctx, prefix, func(k, _ []byte) error {
		ids = append(ids, string(k[len(prefix):]))
		return nil
	})
	return ids, err
}

// usageKey holds the bytes a user has uploaded (the sum of their assets'
// sizes), for the upload quota.
func usageKey(user string) string { return "aq/" + user }

// AssetUsage returns the bytes user's assets add up to. Safe for
// concurrent use.
func (s *Service) AssetUsage(ctx context.Context, user string) (int64, error) {
	var n int64
	_, err := s.store.GetState(ctx, usageKey(user), func(v []byte) {
		if len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
	})
	return n, err
}

// hashRefsKey counts the assets whose bytes are blob hash: the blob may be
// deleted when it drops to zero.
func hashRefsKey(hash string) string { return "ah/" + hash }

// GetAsset returns asset id as stored, or ErrAssetNotFound. Safe for
// concurrent use.
func (s *Service) GetAsset(ctx context.Context, id string) (Asset, error) {
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
	a := rec.Asset
	a.Owner, a.Created = rec.Owner, rec.Created
	return a, nil
}

// MayRead returns asset id if user may download it: its owner, a user it
// was sent to, or a current member of a group it was sent to. Otherwise,
// and for a missing asset alike, ErrAssetNotFound. It reads durable state
// only. Safe for concurrent use.
func (s *Service) MayRead(ctx context.Context, id, user string) (Asset, error) {
	a, err := s.GetAsset(ctx, id)
	if err != nil || a.Owner == user {
		return a, err
	}
	ok, err := s.granted(ctx, id, user, func(ctx context.Context, group string) (bool, error) {
		var rec groupRecord
		var decErr error
		found, err := s.store.GetState(ctx, groupKey(group), func(v []byte) { decErr = json.Unmarshal(v, &rec) })
		if err != nil || !found || decErr != nil {
			return false, errors.Join(err, decErr)
		}
		for _, m := range rec.Members {
			if m.User == user {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return Asset{}, err
	}
	if !ok {
		return Asset{}, ErrAssetNotFound
	}
	return a, nil
}

// granted reports whether asset id was sent to user, or to a group for
// which member says user is in it.
func (s *Service) granted(ctx context.Context, id, user string, member func(ctx context.Context, group string) (bool, error)) (bool, error) {
	prefix := grantPrefix(id)
	if found, err := s.store.GetState(ctx, prefix+user, func([]byte) {}); err != nil || found {
		return found, err
	}
	var groups []string
	err := s.store.ScanState(ctx, prefix+"#", func(k, _ []byte) error {
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

// addAsset records a new asset (KindAsset): its record and one more
// reference to its blob.
func (s *Service) addAsset(ctx context.Context, b *building, r *Request) error {
	a := r.Asset
	if a == nil || a.ID == "" || a.Hash == "" || strings.ContainsRune(a.ID, 0) {
		return badRequest("an asset needs an id and a hash")
	}
	if _, err := s.GetAsset(ctx, a.ID); err == nil {
		return badRequest("asset id in use")
	}
	rec, err := json.Marshal(assetRecord{Asset: *a, Owner: r.From, Created: b.now.UnixMilli()})
	if err != nil {
		return err
	}
	refs, err := s.hashRefs(ctx, b, a.Hash)
	if err != nil {
		return err
	}
	b.hashRefs[a.Hash] = refs + 1
	used, ok := b.usage[r.From]
	if !ok {
		if used, err = s.AssetUsage(ctx, r.From); err != nil {
			return err
		}
	}
	if b.usage == nil {
		b.usage = make(map[string]int64)
	}
	b.usage[r.From] = used + a.Size
	b.c.batch.State = append(b.c.batch.State,
		KV{Key: assetKey(a.ID), Value: rec},
		KV{Key: hashRefsKey(a.Hash), Value: binary.BigEndian.AppendUint64(nil, refs+1)},
		KV{Key: usageKey(r.From), Value: binary.BigEndian.AppendUint64(nil, uint64(used+a.Size))},
		KV{Key: byHashPrefix(a.Hash) + a.ID, Value: []byte{}})
	if b.events {
		b.analytics(r.From, NewEvent("asset.uploaded", r.From, b.now.UnixMilli()).Str("asset_id", a.ID).
			Str("kind", a.Kind).Int("bytes", a.Size))
	}
	return nil
}

// setAssetMedia records what the asset worker found out about an asset
// (KindAssetMedia): its thumbnail's asset id and its dimensions or
// duration. Messages sent afterwards carry them.
func (s *Service) setAssetMedia(ctx context.Context, b *building, r *Request) error {
	m := r.Asset
	if m == nil {
		return badRequest("no asset")
	}
	a, err := s.GetAsset(ctx, m.ID)
	if err != nil {
		return err
	}
	a.Thumb, a.Width, a.Height, a.DurationMS = m.Thumb, m.Width, m.Height, m.DurationMS
	rec, err := json.Marshal(assetRecord{Asset: a, Owner: a.Owner, Created: a.Created})
	if err != nil {
		return err
	}
	b.c.batch.State = append(b.c.batch.State, KV{Key: assetKey(a.ID), Value: rec})
	return nil
}

// hashRefs returns how many assets use blob hash, counting this batch.
func (s *Service) hashRefs(ctx context.Context, b *building, hash string) (uint64, error) {
	if b.hashRefs == nil {
		b.hashRefs = make(map[string]uint64)
	}
	if n, ok := b.hashRefs[hash]; ok {
		return n, nil
	}
	var n uint64
	_, err := s.store.GetState(ctx, hashRefsKey(hash), func(v []byte) {
		if len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
	})
	return n, err
}

// attach checks that r.From may send asset r.AssetID and returns the
// attachment object for the msg frame. The grants for the recipients are
// added by grant once the message is accepted.
func (s *Service) attach(ctx context.Context, b *building, r *Request, group *groupState) ([]byte, error) {
	id := string(r.AssetID)
	a, err := s.GetAsset(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.Owner != r.From {
		ok, err := s.granted(ctx, id, r.From, func(_ context.Context, gid string) (bool, error) {
			g, err := s.group(ctx, gid)
			if errors.Is(err, ErrGroupNotFound) {
				return false, nil
			}
			return err == nil && g.members[r.From] != nil, err
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrAssetNotFound
		}
	}
	return json.Marshal(a)
}

// grant lets the recipients of a message download its attachment: the
// user it went to, or every member of the group (checked when they fetch,
// so members who leave lose access).
func (b *building) grant(assetID, to string, group *groupState) {
	key := grantPrefix(assetID) + to
	if group != nil {
		key = grantPrefix(assetID) + "#" + group.id
	}
	b.c.batch.State = append(b.c.batch.State, KV{Key: key, Value: []byte{}})
}
