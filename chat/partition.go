package chat

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard/switchboard/protocol"
)

// Partitioned sequencing.
//
// With Config.Partitions > 1 the command log has that many partitions and
// one Service sequences each (Config.Partition). Every user's inbox is
// owned by one partition, PartitionOf(user): only that partition's
// Service allocates the user's seqs. Route says which partition a request
// goes to; a request that adds an entry to the inbox of a user another
// partition owns does not allocate the seq itself: it forwards the entry.
//
// Forwarding is a transactional outbox. The entries a batch forwards to
// partition t are written, in the same batch (so atomically with the
// message they belong to), as one entry of the pseudo-inbox of the pair
// (outboxUser), owned by the sender: its seq numbers the forwards from
// this partition to t, gap-free. Once the batch is durable a relay
// appends each new outbox entry to partition t's log (Forwarder), in seq
// order, one at a time; t's Service applies it as a KindForward request:
// it allocates the seqs of its users, writes their entries and delivers
// them, and records in the same batch the last outbox seq it applied from
// the source (the head of a pseudo-inbox, appliedUser, written after the
// entries). A forward at or below that mark is a duplicate and changes
// nothing; one past the next is refused (ErrForwardGap) and submitted
// again. So a relay may send again whatever it is not sure of: after a
// failed append, and after a takeover, when the new owner sends every
// outbox entry after the mark its predecessor recorded (state
// "fo/<source>/<target>") and the targets drop what they had.
//
// Which partition owns what is Route's table; docs/design.md
// ("Partitioned sequencers") has the argument.

// ControlPartition is the partition of the requests that read or write
// state shared between users (see Route).
const ControlPartition = 0

// PartitionOf returns the partition, of n, that owns key (a user id):
// FNV-1a (32 bits) of its bytes, modulo n, which every process computes
// the same way. It does not allocate.
func PartitionOf(key string, n int) int { return partitionOf(key, n) }

func partitionOf[S ~string | ~[]byte](key S, n int) int {
	if n <= 1 {
		return 0
	}
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime
	}
	return int(h % uint32(n))
}

// Route returns the partition, of n, that must sequence r.
//
// One-to-one sends, receipts, typing to a user and message info go to
// the partition of the user who sends them: the sender's client ids and
// the copy in the sender's inbox are theirs, and the recipient's entry is
// forwarded; the status of a one-to-one message is written only by its
// recipient's receipts. A sender's messages to a user thus take one path
// and keep their order. Group messages, typing and operations go to the
// group's partition (PartitionOf its id), which owns its members,
// watermarks and log; a group is created by its creator's partition,
// which gives it an id it owns, and group.list goes to the user's, which
// owns the user's list of groups. What a request does to state another
// partition owns is forwarded there: a member's list of groups, a group
// message's receipt, an attachment sent, a group icon's pin. Assets and
// profiles go to ControlPartition.
func Route(r *Request, n int) int {
	if n <= 1 {
		return 0
	}
	switch r.Kind {
	case KindReceipt, KindMsgInfo:
		return PartitionOf(r.From, n)
	case KindSend, KindTyping:
		if len(r.Group) > 0 {
			return partitionOf(r.Group, n)
		}
		return PartitionOf(r.From, n)
	case KindGroup:
		if r.Op == GroupCreate || r.Op == GroupList {
			return PartitionOf(r.From, n) // a new group's id is one this partition owns
		}
		return partitionOf(r.Group, n)
	}
	return ControlPartition
}

// Forwarder is an optional Bus ability that a partitioned Service needs:
// appending a KindForward request to partition p of the command log.
type Forwarder interface {
	// Forward appends r to partition p durably: when it returns nil, the
	// request will reach p's Service. r is not retained.
	Forward(ctx context.Context, p int, r *Request) error
}

// The outboxes and marks of every partition share the store: each names
// both partitions. Pseudo-inboxes (their first byte) belong to the
// partition that writes them and are never delivered.
const (
	pseudoPrefix  = "\x02"
	outboxPrefix  = "\x02o/" // the forwards from a source to a target, by outbox seq
	appliedPrefix = "\x02i/" // its head: the last outbox seq of a source that a target applied
)

// outboxUser is the pseudo-inbox of the forwards from source to target.
func outboxUser(source, target int) string {
	return outboxPrefix + strconv.Itoa(source) + "/" + strconv.Itoa(target)
}

// outMark is the state key of the last outbox seq that source's relay
// appended to target's log.
func outMark(source, target int) string {
	return "fo/" + strconv.Itoa(source) + "/" + strconv.Itoa(target)
}

// appliedUser is the pseudo-inbox of target that mirrors source's outbox
// to it: an empty entry at each outbox seq target applied, written in the
// batch that applied it, so that its head, written with the heads of the
// users the forward reached (after their entries), says how far target
// got.
func appliedUser(target, source int) string {
	return appliedPrefix + strconv.Itoa(source) + "/" + strconv.Itoa(target)
}

func isOutbox(user string) bool { return strings.HasPrefix(user, outboxPrefix) }

func isPseudo(user string) bool { return len(user) > 0 && user[0] == pseudoPrefix[0] }

// owns reports whether this Service allocates user's seqs.
func (s *Service) owns(user string) bool {
	n := s.cfg.Partitions
	if n <= 1 || isPseudo(user) {
		return true
	}
	if isGroupInbox(user) {
		return PartitionOf(user[len(groupInboxPrefix):], n) == s.cfg.Partition
	}
	return PartitionOf(user, n) == s.cfg.Partition
}

// addEntry adds an entry to user's inbox whose frame is
// protocol.AppendHead(typ, seq) followed by tail, then by the shared part
// key (if not ""), a part of this batch. For a user another partition
// owns it queues the entry for forwarding instead.
func (s *Service) addEntry(ctx context.Context, b *building, user, typ string, tail []byte, shared string) error {
	if !s.owns(user) {
		b.forward(PartitionOf(user, s.cfg.Partitions), user, typ, tail, shared)
		return nil
	}
	return s.ownEntry(ctx, b, user, typ, tail, shared)
}

// headLen returns the length of protocol.AppendHead(nil, typ, seq).
func headLen(typ string, seq uint64) int {
	n := 1
	for v := seq; v >= 10; v /= 10 {
		n++
	}
	return len(`{"type":"`) + len(typ) + len(`","seq":`) + n
}

// A forward, as stored in the outbox and carried in a KindForward
// request's Body (after the source partition and the outbox seq, two
// uvarints): a version byte, the number of items and the items, each a
// kind byte and its fields (strings as a uvarint length and the bytes;
// see the item kinds), then the number of shared parts and each part's
// key and data.
const forwardVersion = 1

// fwd is what one batch forwards to one partition.
type fwd struct {
	items  int
	buf    []byte   // the items, encoded
	shared []string // distinct shared keys the items name
}

// Kinds of forwarded items.
const (
	itemEntry        = 'e' // user, type, tail, shared key: an inbox entry
	itemAssetSent    = 's' // asset id: the asset was sent (to ControlPartition)
	itemGroupReceipt = 'r' // reader, msg id, status byte: a receipt of a group message (to the group's partition)
	itemGroupMember  = 'g' // user, group id, in byte: the user joined (1) or left (0) the group (to the user's partition)
	itemPin          = 'p' // asset id, user, grantee: pin the user's asset as a group's icon (to ControlPartition)
	itemUnpin        = 'u' // asset id, grantee: unpin it (to ControlPartition)
)

// to returns what b forwards to target, created empty.
func (b *building) to(target int) *fwd {
	if b.fwd == nil {
		b.fwd = make(map[int]*fwd)
	}
	f := b.fwd[target]
	if f == nil {
		f = &fwd{}
		b.fwd[target] = f
	}
	f.items++
	return f
}

// forward queues an inbox entry for user, whose seq target allocates.
func (b *building) forward(target int, user, typ string, tail []byte, shared string) {
	f := b.to(target)
	f.buf = append(f.buf, itemEntry)
	f.buf = appendStr(f.buf, user)
	f.buf = appendStr(f.buf, typ)
	f.buf = appendStr(f.buf, tail)
	f.buf = appendStr(f.buf, shared)
	if shared != "" && (len(f.shared) == 0 || f.shared[len(f.shared)-1] != shared) {
		f.shared = append(f.shared, shared)
	}
}

// forwardAssetSent tells ControlPartition, which owns asset records, that
// asset id was sent: the unsent collector must leave it.
func (b *building) forwardAssetSent(id string) {
	f := b.to(ControlPartition)
	f.buf = append(f.buf, itemAssetSent)
	f.buf = appendStr(f.buf, id)
}

// forwardGroupReceipt hands target, the partition of the group (which
// owns its watermarks), reader's receipt of group message id.
func (b *building) forwardGroupReceipt(target int, reader, id string, st Status) {
	f := b.to(target)
	f.buf = append(f.buf, itemGroupReceipt)
	f.buf = appendStr(f.buf, reader)
	f.buf = appendStr(f.buf, id)
	f.buf = append(f.buf, byte(st))
}

// forwardGroupMember tells target, user's partition (which owns the
// user's list of groups), that user joined or left group.
func (b *building) forwardGroupMember(target int, user, group string, in bool) {
	f := b.to(target)
	f.buf = append(f.buf, itemGroupMember)
	f.buf = appendStr(f.buf, user)
	f.buf = appendStr(f.buf, group)
	if in {
		f.buf = append(f.buf, 1)
	} else {
		f.buf = append(f.buf, 0)
	}
}

// forwardPin and forwardUnpin hand ControlPartition, which owns asset
// records, a group icon's pin and unpin.
func (b *building) forwardPin(asset, user, grantee string) {
	f := b.to(ControlPartition)
	f.buf = append(f.buf, itemPin)
	f.buf = appendStr(f.buf, asset)
	f.buf = appendStr(f.buf, user)
	f.buf = appendStr(f.buf, grantee)
}

func (b *building) forwardUnpin(asset, grantee string) {
	f := b.to(ControlPartition)
	f.buf = append(f.buf, itemUnpin)
	f.buf = appendStr(f.buf, asset)
	f.buf = appendStr(f.buf, grantee)
}

func appendStr[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// finishForwards writes what b forwards to each partition as the next
// entry of that partition's outbox, in partition order.
func (s *Service) finishForwards(ctx context.Context, b *building) error {
	c := b.c
	for t := range s.cfg.Partitions {
		f := b.fwd[t]
		if f == nil {
			continue
		}
		seq, err := s.nextSeq(ctx, s.outboxes[t])
		if err != nil {
			return err
		}
		n := len(c.arena)
		c.arena = append(c.arena, forwardVersion)
		c.arena = binary.AppendUvarint(c.arena, uint64(f.items))
		c.arena = append(c.arena, f.buf...)
		c.arena = binary.AppendUvarint(c.arena, uint64(len(f.shared)))
		for _, k := range f.shared {
			c.arena = appendStr(c.arena, k)
			c.arena = appendStr(c.arena, c.batch.sharedPart(k))
		}
		c.batch.Entries = append(c.batch.Entries, Entry{User: s.outboxes[t], Seq: seq, Frame: c.arena[n:]})
	}
	clear(b.fwd)
	// The relay's progress, so that a successor resends only what may
	// not have arrived: at most once a second per target (each is a
	// state write; a stale mark only means more resends, dropped).
	if s.relay != nil && b.now.Sub(s.markAt) >= markInterval {
		s.markAt = b.now
		for t, acked := range s.relay.progress() {
			if acked > s.markWritten[t] {
				c.batch.State = append(c.batch.State, KV{Key: outMark(s.cfg.Partition, t), Value: binary.AppendUvarint(nil, acked)})
				s.markWritten[t] = acked
			}
		}
	}
	return nil
}

// markInterval is how often the relay's progress is written.
const markInterval = time.Second

// ErrBadForward is the result of a KindForward request whose body is not
// a forward.
var ErrBadForward = errors.New("switchboard: malformed forward")

// ErrForwardGap is the result of a KindForward request whose outbox seq
// is not the next one from its source: one before it has not been applied
// yet (its batch failed). It is not applied; the worker submits it again
// after the one before (cluster.Worker retries failed forwards).
var ErrForwardGap = errors.New("switchboard: a forward before this one is not applied yet")

// A KindForward request's Body: the source partition, its sequencer's
// writer epoch (Config.Epoch), the outbox seq of the first forward and
// their number (uvarints), then each forward (a uvarint length and its
// bytes), at consecutive outbox seqs. A relay that fell behind sends up
// to maxPerRecord of them in one record.
const maxPerRecord = 64

// applyForward applies a KindForward request: the entries another
// partition forwarded to users this one owns, each forward once.
func (s *Service) applyForward(ctx context.Context, b *building, r *Request) Result {
	d := fwdDecoder{b: r.Body}
	src, epoch, first, n := d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
	if d.err != nil || src >= uint64(s.cfg.Partitions) || int(src) == s.cfg.Partition || first == 0 || n == 0 || n > maxPerRecord {
		return Result{Err: ErrBadForward}
	}
	frames := make([][]byte, n)
	for i := range frames {
		l := d.uvarint()
		if d.err != nil || l > uint64(len(d.b)-d.off) {
			return Result{Err: ErrBadForward}
		}
		frames[i] = d.b[d.off : d.off+int(l)]
		d.off += int(l)
	}
	if d.off != len(d.b) {
		return Result{Err: ErrBadForward}
	}
	// A deposed sequencer of the source (paused past its ownership, then
	// resumed) may still append: once its successor's forwards have
	// come, its own are dropped, as gateways drop its deliveries.
	if epoch != 0 {
		if epoch < s.srcEpochs[src] {
			s.m.forwardsFenced.Inc()
			return Result{Dup: true}
		}
		s.srcEpochs[src] = epoch
	}
	mark := s.applied[src]
	last, err := s.headSeq(ctx, mark)
	if err != nil {
		return Result{Err: err}
	}
	if first > last+1 {
		return Result{Err: ErrForwardGap}
	}
	// All or nothing: every forward is checked before any is added to
	// the batch, and a store failure midway fails the batch.
	for i, f := range frames {
		if first+uint64(i) > last {
			if err := checkForward(f); err != nil {
				return Result{Err: err}
			}
		}
	}
	applied := 0
	for i, f := range frames {
		if first+uint64(i) <= last {
			s.m.forwardDups.Inc()
			continue
		}
		err := s.applyItems(ctx, b, f)
		if err == nil {
			err = s.ownEntry(ctx, b, mark, "", nil, "")
		}
		if err != nil {
			b.fatal = err
			return Result{Err: err}
		}
		s.m.forwarded.Inc()
		applied++
	}
	return Result{Dup: applied == 0}
}

// checkForward reports whether p decodes as a forward (ErrBadForward if
// not), without applying it.
func checkForward(p []byte) error {
	d := fwdDecoder{b: p}
	if d.byte() != forwardVersion {
		return ErrBadForward
	}
	for range min(d.uvarint(), uint64(len(p))) {
		switch d.byte() {
		case itemEntry:
			d.bytes()
			d.bytes()
			d.bytes()
			d.bytes()
		case itemAssetSent:
			d.bytes()
		case itemGroupReceipt, itemGroupMember:
			d.bytes()
			d.bytes()
			d.byte()
		case itemPin:
			d.bytes()
			d.bytes()
			d.bytes()
		case itemUnpin:
			d.bytes()
			d.bytes()
		default:
			return ErrBadForward
		}
		if d.err != nil {
			return ErrBadForward
		}
	}
	for range min(d.uvarint(), uint64(len(p))) {
		d.bytes()
		d.bytes()
	}
	if d.err != nil || d.off != len(p) {
		return ErrBadForward
	}
	return nil
}

// applyItems adds the entries of an encoded forward to the inboxes of
// their users, and its shared parts to the batch.
func (s *Service) applyItems(ctx context.Context, b *building, p []byte) error {
	d := fwdDecoder{b: p}
	if d.byte() != forwardVersion {
		return ErrBadForward
	}
	type item struct {
		kind           byte
		user, typ, key string // key: the shared part's, or the asset's, message's or group's id
		grantee        string
		tail           []byte // a slice of p
		status         Status // itemGroupReceipt; itemGroupMember: 1 joined, 0 left
	}
	items := make([]item, min(d.uvarint(), uint64(len(p))))
	for i := range items {
		it := item{kind: d.byte()}
		switch it.kind {
		case itemEntry:
			it.user, it.typ, it.tail, it.key = d.str(), d.typ(), d.bytes(), d.str()
		case itemAssetSent:
			it.key = d.str()
		case itemGroupReceipt, itemGroupMember:
			it.user, it.key, it.status = d.str(), d.str(), Status(d.byte())
		case itemPin:
			it.key, it.user, it.grantee = d.str(), d.str(), d.str()
		case itemUnpin:
			it.key, it.grantee = d.str(), d.str()
		default:
			return ErrBadForward
		}
		if d.err != nil {
			return ErrBadForward
		}
		items[i] = it
	}
	c := b.c
	for range d.uvarint() {
		k, data := d.bytes(), d.bytes()
		if d.err != nil {
			return ErrBadForward
		}
		if c.batch.sharedPart(string(k)) == nil {
			n := len(c.arena)
			c.arena = append(c.arena, data...)
			c.batch.Shared = append(c.batch.Shared, SharedPart{Key: string(k), Data: c.arena[n:]})
		}
	}
	if d.err != nil || d.off != len(p) {
		return ErrBadForward
	}
	for _, it := range items {
		var err error
		switch it.kind {
		case itemEntry:
			if !s.owns(it.user) {
				// Partitions were counted differently when it was sent:
				// deliver it anyway rather than lose it, and say so.
				s.log.Error("a forwarded entry's user is not this partition's", "user", it.user, "partition", s.cfg.Partition)
			}
			err = s.ownEntry(ctx, b, it.user, it.typ, it.tail, it.key)
		case itemAssetSent:
			err = s.markSent(ctx, b, it.key)
		case itemGroupReceipt:
			var m MessageMeta
			var ok bool
			if m, ok, err = s.lookupMeta(ctx, b, it.key); err == nil && ok && isGroupInbox(m.To) {
				err = s.groupReceipt(ctx, b, it.user, &m, it.status)
			}
		case itemGroupMember:
			err = s.setInGroup(ctx, b, it.user, it.key, it.status != 0)
		case itemPin:
			// Checked by the group's partition; the asset may have gone
			// since: the icon then reads as missing.
			if perr := s.pin(ctx, b, it.key, it.user, it.grantee); perr != nil {
				s.log.Warn("a group icon's pin failed", "asset", it.key, "group", it.grantee, "err", perr)
			}
		case itemUnpin:
			if uerr := s.unpin(ctx, b, it.key, it.grantee); uerr != nil && !errors.Is(uerr, ErrAssetNotFound) {
				err = uerr
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// control reports whether this Service owns the state shared between
// users (groups, assets, profiles): unpartitioned, or ControlPartition.
func (s *Service) control() bool {
	return s.cfg.Partitions <= 1 || s.cfg.Partition == ControlPartition
}

// ownEntry is addEntry for a user whose seq this Service allocates.
// An empty typ adds an empty frame (a mark).
func (s *Service) ownEntry(ctx context.Context, b *building, user, typ string, tail []byte, shared string) error {
	seq, err := s.nextSeq(ctx, user)
	if err != nil {
		return err
	}
	c := b.c
	n := len(c.arena)
	if typ != "" {
		c.arena = protocol.AppendHead(c.arena, typ, seq)
	}
	c.arena = append(c.arena, tail...)
	c.batch.Entries = append(c.batch.Entries, Entry{User: user, Seq: seq, Frame: c.arena[n:], Shared: shared})
	return nil
}

type fwdDecoder struct {
	b   []byte
	off int
	err error
}

func (d *fwdDecoder) byte() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.err = ErrBadForward
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *fwdDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.err = ErrBadForward
		return 0
	}
	d.off += n
	return v
}

// bytes returns the next string's bytes, a slice of the input.
func (d *fwdDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)-d.off) {
		d.err = ErrBadForward
		return nil
	}
	b := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b
}

func (d *fwdDecoder) str() string { return string(d.bytes()) }

// typ returns the next string, an entry's type: one of the few there are,
// without allocating.
func (d *fwdDecoder) typ() string {
	switch b := d.bytes(); string(b) {
	case "msg":
		return "msg"
	case "group":
		return "group"
	case "receipt":
		return "receipt"
	default:
		return string(b)
	}
}

// relay appends the outbox entries of applied batches to their target
// partitions, and sends again from the store whatever it could not. One
// goroutine per target partition is the only caller of the Forwarder for
// it, one entry at a time, in seq order: an entry is appended only once
// the one before it is durable in the log, so a target never sees a gap
// (a failed append may have reached the log: the target drops the
// resend).
type relay struct {
	s    *Service
	fw   Forwarder
	self int

	mu     sync.Mutex
	queue  [][]outRec // per target: applied, not yet appended, in seq order
	acked  []uint64   // per target: appended up to
	high   []uint64   // per target: written to the outbox up to
	wake   []chan struct{}
	closed bool

	stop   context.Context // ends relayGrace after close: what is unsent then waits for the next owner
	cancel context.CancelFunc
}

// relayGrace is how long a closing relay goes on sending before it leaves
// the rest to the partition's next owner.
const relayGrace = 2 * time.Second

type outRec struct {
	seq   uint64
	frame []byte
}

// startRelay reads where the relay of this partition's previous owner
// stopped, and starts the relay, which first sends what that owner may
// not have.
func (s *Service) startRelay(ctx context.Context, fw Forwarder) error {
	n := s.cfg.Partitions
	s.outboxes, s.applied = make([]string, n), make([]string, n)
	for t := range n {
		s.outboxes[t], s.applied[t] = outboxUser(s.cfg.Partition, t), appliedUser(s.cfg.Partition, t)
	}
	r := &relay{s: s, fw: fw, self: s.cfg.Partition, queue: make([][]outRec, n),
		acked: make([]uint64, n), high: make([]uint64, n), wake: make([]chan struct{}, n)}
	s.markWritten = make([]uint64, n)
	for t := range n {
		if t == s.cfg.Partition {
			continue
		}
		v, _, err := s.getState(ctx, outMark(s.cfg.Partition, t))
		if err != nil {
			return fmt.Errorf("reading the outbox mark of partition %d: %w", t, err)
		}
		r.acked[t], _ = binary.Uvarint(v)
		s.markWritten[t] = r.acked[t]
		if r.high[t], err = s.store.LastSeq(ctx, outboxUser(s.cfg.Partition, t)); err != nil {
			return fmt.Errorf("reading the outbox of partition %d: %w", t, err)
		}
		r.wake[t] = make(chan struct{}, 1)
	}
	r.stop, r.cancel = context.WithCancel(context.Background())
	s.relay = r
	for t := range n {
		if t != s.cfg.Partition {
			s.wg.Add(1)
			go r.run(t)
		}
	}
	return nil
}

// progress returns, per target, the outbox seq appended up to.
func (r *relay) progress() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.acked...)
}

// add queues the outbox entries of an applied batch.
func (r *relay) add(c *commit) {
	r.mu.Lock()
	for _, e := range c.batch.Entries {
		if !isOutbox(e.User) {
			continue
		}
		_, target, _ := strings.Cut(e.User[len(outboxPrefix):], "/")
		t, _ := strconv.Atoi(target)
		r.queue[t] = append(r.queue[t], outRec{seq: e.Seq, frame: append([]byte(nil), e.Frame...)})
		r.high[t] = max(r.high[t], e.Seq)
		r.kick(t)
	}
	r.mu.Unlock()
}

func (r *relay) kick(t int) {
	select {
	case r.wake[t] <- struct{}{}:
	default:
	}
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	time.AfterFunc(relayGrace, r.cancel)
	for t, w := range r.wake {
		if w != nil {
			r.kick(t)
		}
	}
}

// run sends to target until closed and nothing is left that it can send.
func (r *relay) run(t int) {
	defer r.s.wg.Done()
	backoff := 10 * time.Millisecond
	for {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		err := r.send(t)
		switch {
		case err == nil && closed:
			return
		case err == nil:
			backoff = 10 * time.Millisecond
			<-r.wake[t]
		case closed:
			// The next owner sends them from the outbox.
			r.s.log.Warn("relay stopped with forwards unsent; the partition's next owner sends them", "err", err)
			return
		default:
			r.s.log.Warn("forwarding failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-r.stop.Done():
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// send appends everything between acked and high to target: the queued
// entries, and from the store those that are not queued (sent before a
// failure, or by the previous owner).
func (r *relay) send(t int) error {
	ctx, cancel := context.WithTimeout(r.stop, 10*time.Second)
	defer cancel()
	var recs []outRec
	for {
		r.mu.Lock()
		acked, high := r.acked[t], r.high[t]
		q := r.queue[t]
		for len(q) > 0 && q[0].seq <= acked {
			q = q[1:] // read back from the store and sent already
		}
		r.queue[t] = q
		// What is queued from acked+1 on, consecutive: all of it in one
		// record, up to maxPerRecord, when the relay fell behind.
		recs = recs[:0]
		for _, e := range q {
			if len(recs) == maxPerRecord || e.seq != acked+1+uint64(len(recs)) {
				break
			}
			recs = append(recs, e)
		}
		r.mu.Unlock()
		if acked >= high {
			return nil
		}
		if len(recs) == 0 {
			// Not in memory: read them back.
			err := r.s.store.ReadInbox(ctx, outboxUser(r.self, t), acked, int(min(high-acked, maxPerRecord)), func(seq uint64, frame []byte) error {
				if seq == acked+1+uint64(len(recs)) {
					recs = append(recs, outRec{seq: seq, frame: append([]byte(nil), frame...)})
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("reading the outbox of partition %d: %w", t, err)
			}
			if len(recs) == 0 {
				// Expired (past the retention) before it was sent: an
				// empty forward in its place, so that the target,
				// which applies its source's forwards in seq order,
				// moves on.
				r.s.log.Error("outbox entry missing; sending an empty one in its place", "partition", t, "seq", acked+1)
				recs = append(recs, outRec{seq: acked + 1, frame: []byte{forwardVersion, 0, 0}})
			}
		}
		if err := r.forward(ctx, t, recs); err != nil {
			return err
		}
		r.mu.Lock()
		r.acked[t] = recs[len(recs)-1].seq
		r.mu.Unlock()
	}
}

// forward appends recs, consecutive outbox entries, to target's log in
// one record.
func (r *relay) forward(ctx context.Context, t int, recs []outRec) error {
	size := 30
	for _, e := range recs {
		size += 10 + len(e.frame)
	}
	body := binary.AppendUvarint(make([]byte, 0, size), uint64(r.self))
	body = binary.AppendUvarint(body, r.s.cfg.Epoch)
	body = binary.AppendUvarint(body, recs[0].seq)
	body = binary.AppendUvarint(body, uint64(len(recs)))
	for _, e := range recs {
		body = appendStr(body, e.frame)
	}
	req := Request{Kind: KindForward, From: r.s.outboxes[t], Body: body}
	if err := r.fw.Forward(ctx, t, &req); err != nil {
		return fmt.Errorf("forwarding to partition %d: %w", t, err)
	}
	r.s.m.forwardRecords.Inc()
	return nil
}
