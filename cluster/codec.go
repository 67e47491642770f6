package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

// Wire format of commands and replies.
//
// A command is one record on the command log:
//
//	version (1 byte, 1) | node (string) | corr (uvarint) | request
//
// and a reply one record to the node that sent it:
//
//	version (1 byte, 1) | corr (uvarint) | result
//
// A string or byte slice is a uvarint length and its bytes; a list is a
// uvarint count and its items. The request is its kind, op, status and
// flags (one byte each), then its fields in a fixed order, optional parts
// (asset, collect, sweep, profile) behind a presence byte. Nothing is
// padded or aligned: records are small and decoded once.
const wireVersion = 1

// ErrBadRecord is returned (wrapped) by the decoders for a record that is
// not a command or reply of this version: truncated, oversized or unknown.
var ErrBadRecord = errors.New("cluster: malformed record")

// Limits a decoder enforces before it allocates: a record on the log may
// come from anyone who can write to the topic.
const (
	maxListItems = 1 << 16
)

const (
	flagStop     = 1 << 0
	flagAsset    = 1 << 1
	flagCollect  = 1 << 2
	flagSweep    = 1 << 3
	flagProfile  = 1 << 4
	flagHasName  = 1 << 5 // Profile.Name set
	flagHasAbout = 1 << 6 // Profile.About set
	flagHasPhoto = 1 << 7 // Profile.Photo set
)

// AppendCommand appends the command for r, to be answered to node under
// corr, to dst and returns it. r.Done is not encoded.
func AppendCommand(dst []byte, node string, corr uint64, r *chat.Request) []byte {
	dst = append(dst, wireVersion)
	dst = appendString(dst, node)
	dst = binary.AppendUvarint(dst, corr)
	var flags byte
	if r.Stop {
		flags |= flagStop
	}
	if r.Asset != nil {
		flags |= flagAsset
	}
	if r.Collect != nil {
		flags |= flagCollect
	}
	if r.Sweep != nil {
		flags |= flagSweep
	}
	if p := r.Profile; p != nil {
		flags |= flagProfile
		if p.Name != nil {
			flags |= flagHasName
		}
		if p.About != nil {
			flags |= flagHasAbout
		}
		if p.Photo != nil {
			flags |= flagHasPhoto
		}
	}
	dst = append(dst, byte(r.Kind), byte(r.Op), byte(r.Status), flags)
	dst = appendString(dst, r.From)
	dst = appendBytes(dst, r.ClientID)
	dst = appendBytes(dst, r.To)
	dst = appendBytes(dst, r.Group)
	dst = appendBytes(dst, r.Name)
	dst = appendBytes(dst, r.Body)
	dst = appendList(dst, r.MsgIDs)
	dst = appendList(dst, r.Members)
	dst = appendBytes(dst, r.AssetID)
	dst = binary.AppendVarint(dst, r.PutAt)
	if a := r.Asset; a != nil {
		for _, s := range [...]string{a.ID, a.Owner, a.Hash, a.Mime, a.Kind, a.Name, a.Thumb, a.Parent} {
			dst = appendString(dst, s)
		}
		for _, n := range [...]int64{a.Size, a.Created, int64(a.Width), int64(a.Height), a.DurationMS} {
			dst = binary.AppendVarint(dst, n)
		}
	}
	if c := r.Collect; c != nil {
		dst = binary.AppendVarint(dst, c.UnsentBefore)
		dst = binary.AppendVarint(dst, c.CreatedBefore)
	}
	if s := r.Sweep; s != nil {
		dst = appendString(dst, s.Hash)
		dst = append(dst, byte(s.Step))
		dst = binary.AppendVarint(dst, s.Before)
	}
	if p := r.Profile; p != nil {
		for _, s := range [...]*string{p.Name, p.About, p.Photo} {
			if s != nil {
				dst = appendString(dst, *s)
			}
		}
	}
	return dst
}

// DecodeCommand decodes a command into r (whose previous contents it
// overwrites, Done aside) and returns the node to answer and the
// correlation id. r's byte slices point into b: b must outlive r's use.
func DecodeCommand(b []byte, r *chat.Request) (node string, corr uint64, err error) {
	d := decoder{b: b}
	if v := d.byte(); v != wireVersion {
		return "", 0, fmt.Errorf("%w: version %d", ErrBadRecord, v)
	}
	node = d.string()
	corr = d.uvarint()
	done := r.Done
	*r = chat.Request{Done: done}
	r.Kind = chat.Kind(d.byte())
	r.Op = chat.GroupOp(d.byte())
	r.Status = chat.Status(d.byte())
	flags := d.byte()
	r.Stop = flags&flagStop != 0
	r.From = d.string()
	r.ClientID = d.bytes()
	r.To = d.bytes()
	r.Group = d.bytes()
	r.Name = d.bytes()
	r.Body = d.bytes()
	r.MsgIDs = d.list()
	r.Members = d.list()
	r.AssetID = d.bytes()
	r.PutAt = d.varint()
	if flags&flagAsset != 0 {
		a := new(chat.Asset)
		for _, s := range [...]*string{&a.ID, &a.Owner, &a.Hash, &a.Mime, &a.Kind, &a.Name, &a.Thumb, &a.Parent} {
			*s = d.string()
		}
		a.Size, a.Created = d.varint(), d.varint()
		a.Width, a.Height = int(d.varint()), int(d.varint())
		a.DurationMS = d.varint()
		r.Asset = a
	}
	if flags&flagCollect != 0 {
		r.Collect = &chat.Collect{UnsentBefore: d.varint(), CreatedBefore: d.varint()}
	}
	if flags&flagSweep != 0 {
		r.Sweep = &chat.Sweep{Hash: d.string(), Step: chat.BlobStep(d.byte()), Before: d.varint()}
	}
	if flags&flagProfile != 0 {
		p := new(chat.ProfileUpdate)
		for _, f := range [...]struct {
			bit byte
			dst **string
		}{{flagHasName, &p.Name}, {flagHasAbout, &p.About}, {flagHasPhoto, &p.Photo}} {
			if flags&f.bit != 0 {
				s := d.string()
				*f.dst = &s
			}
		}
		r.Profile = p
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrBadRecord, len(d.b))
	}
	if d.err != nil {
		*r = chat.Request{Done: done}
		return "", 0, d.err
	}
	return node, corr, nil
}

// Result errors on the wire: a client-visible *protocol.Error travels as
// its code and message; the core's sentinel errors as one of these codes,
// so that errors.Is holds on the gateway; anything else as "internal".
var sentinels = []struct {
	code string
	err  error
}{
	{"overloaded", chat.ErrOverloaded},
	{"shutting_down", chat.ErrShuttingDown},
	{"blob_gone", chat.ErrBlobGone},
	{"blob_in_use", chat.ErrBlobInUse},
	{"asset_kept", chat.ErrAssetKept},
}

const (
	errNone     = 0
	errProtocol = 1 // code, message: a *protocol.Error
	errSentinel = 2 // code: one of sentinels
	errOther    = 3 // message: err.Error()
)

// AppendReply appends the reply carrying res for corr to dst.
func AppendReply(dst []byte, corr uint64, res *chat.Result) []byte {
	dst = append(dst, wireVersion)
	dst = binary.AppendUvarint(dst, corr)
	var flags byte
	if res.Dup {
		flags = 1
	}
	dst = append(dst, flags)
	dst = appendString(dst, res.MsgID)
	dst = binary.AppendVarint(dst, res.TS)
	dst = appendBytes(dst, res.Data)
	var pe *protocol.Error
	switch {
	case res.Err == nil:
		dst = append(dst, errNone)
	case errors.As(res.Err, &pe):
		dst = append(dst, errProtocol)
		dst = appendString(dst, pe.Code)
		dst = appendString(dst, pe.Message)
	default:
		for _, s := range sentinels {
			if errors.Is(res.Err, s.err) {
				dst = append(dst, errSentinel)
				return appendString(dst, s.code)
			}
		}
		dst = append(dst, errOther)
		dst = appendString(dst, res.Err.Error())
	}
	return dst
}

// DecodeReply decodes a reply. res.Data points into b. The protocol
// errors of the core (chat.ErrGroupNotFound and the others) come back as
// equal *protocol.Error values, not the same pointers: compare codes.
func DecodeReply(b []byte) (corr uint64, res chat.Result, err error) {
	d := decoder{b: b}
	if v := d.byte(); v != wireVersion {
		return 0, chat.Result{}, fmt.Errorf("%w: version %d", ErrBadRecord, v)
	}
	corr = d.uvarint()
	res.Dup = d.byte()&1 != 0
	res.MsgID = d.string()
	res.TS = d.varint()
	if data := d.bytes(); len(data) > 0 {
		res.Data = data
	}
	switch kind := d.byte(); kind {
	case errNone:
	case errProtocol:
		res.Err = &protocol.Error{Code: d.string(), Message: d.string()}
	case errSentinel:
		code := d.string()
		res.Err = fmt.Errorf("%w: unknown error code %q", ErrBadRecord, code)
		for _, s := range sentinels {
			if s.code == code {
				res.Err = s.err
			}
		}
	case errOther:
		res.Err = remoteError(d.string())
	default:
		d.fail("error kind")
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrBadRecord, len(d.b))
	}
	if d.err != nil {
		return 0, chat.Result{}, d.err
	}
	return corr, res, nil
}

// remoteError is an unclassified error a worker reported; the gateway
// answers it as "internal".
type remoteError string

func (e remoteError) Error() string { return "worker: " + string(e) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendList(dst []byte, l [][]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(l)))
	for _, b := range l {
		dst = appendBytes(dst, b)
	}
	return dst
}

// decoder reads the wire format; the first error sticks and every later
// read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrBadRecord, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("length")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next byte slice, nil when empty, pointing into the
// record.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	if n == 0 {
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) list() [][]byte {
	n := d.uvarint()
	// Each item takes at least one byte: a count beyond what is left is
	// a lie, refused before allocating.
	if n > uint64(len(d.b)) || n > maxListItems {
		d.fail("list count")
		return nil
	}
	if n == 0 {
		return nil
	}
	l := make([][]byte, n)
	for i := range l {
		l[i] = d.bytes()
	}
	return l
}
