package kafka

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"github.com/switchboard/switchboard/chat"
)

// KindDelivery is the kind byte of a delivery record on a node topic
// (Publish); HandleNode refuses it.
const KindDelivery byte = 'd'

// KindFencedDelivery is the kind byte of a delivery that carries its
// sequencer's epoch (chat.Delivery.Epoch): uvarint epoch, then
// appendDelivery's bytes. Gateways of a version before it count such
// records as an unknown kind and skip them (the entries wait in the
// inboxes), so upgrade the gateways before the workers.
const KindFencedDelivery byte = 'D'

// KindPartitionDelivery is the kind byte of a fenced delivery from the
// sequencer of a partition other than 0 (chat.Delivery.Partition): uvarint
// partition, uvarint epoch, then appendDelivery's bytes. Partition 0's
// are KindFencedDelivery, as before partitions.
const KindPartitionDelivery byte = 'P'

// maxPartition is the largest partition a delivery may name
// (CommandsConfig.Partitions is at most 1024).
const maxPartition = 1023

// isDelivery reports whether kind is one of the deliveries' kinds.
func isDelivery(kind byte) bool {
	return kind == KindDelivery || kind == KindFencedDelivery || kind == KindPartitionDelivery
}

// errBadDelivery is what decodeDelivery returns for bytes that are not a
// delivery; such a record is counted (Stats.BadRecords) and skipped.
var errBadDelivery = errors.New("kafka: malformed delivery record")

// appendDelivery appends the binary form of d to dst (after the kind byte,
// which the caller writes):
//
//	uvarint len(Shared) | Shared | uvarint len(Items) |
//	len(Items) × (uvarint len(User) | User | uvarint Seq | uvarint Conn | uvarint len(Head) | Head)
//
// The shared part is written once, whatever the number of items.
func appendDelivery(dst []byte, d *chat.Delivery) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(d.Shared)))
	dst = append(dst, d.Shared...)
	dst = binary.AppendUvarint(dst, uint64(len(d.Items)))
	for i := range d.Items {
		it := &d.Items[i]
		dst = binary.AppendUvarint(dst, uint64(len(it.User)))
		dst = append(dst, it.User...)
		dst = binary.AppendUvarint(dst, it.Seq)
		dst = binary.AppendUvarint(dst, it.Conn)
		dst = binary.AppendUvarint(dst, uint64(len(it.Head)))
		dst = append(dst, it.Head...)
	}
	return dst
}

// minItemBytes is the smallest encoded item (four one-byte uvarints): a
// declared item count is checked against it before Items grows.
const minItemBytes = 4

// decodeDelivery decodes src (appendDelivery's bytes) into d, reusing
// d.Items. Shared and every Head are subslices of src, and every User a
// string over src's bytes: nothing is copied, so src must not change
// while d is in use. Only growing d.Items allocates. It returns
// errBadDelivery for anything but exactly one well-formed delivery.
func decodeDelivery(src []byte, d *chat.Delivery) error {
	d.Items = d.Items[:0]
	var ok bool
	if d.Shared, src, ok = chunk(src); !ok {
		return errBadDelivery
	}
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)-k)/minItemBytes {
		return errBadDelivery
	}
	src = src[k:]
	d.Items = growItems(d.Items, int(n))
	for i := range d.Items {
		it := &d.Items[i]
		var user []byte
		if user, src, ok = chunk(src); !ok {
			return errBadDelivery
		}
		it.User = unsafe.String(unsafe.SliceData(user), len(user))
		if it.Seq, src, ok = uvarint(src); !ok {
			return errBadDelivery
		}
		if it.Conn, src, ok = uvarint(src); !ok {
			return errBadDelivery
		}
		if it.Head, src, ok = chunk(src); !ok {
			return errBadDelivery
		}
	}
	if len(src) != 0 {
		return errBadDelivery
	}
	return nil
}

// growItems returns items resliced to n, reallocated only when too small.
func growItems(items []chat.Item, n int) []chat.Item {
	if cap(items) < n {
		return make([]chat.Item, n)
	}
	return items[:n]
}

func uvarint(src []byte) (uint64, []byte, bool) {
	v, k := binary.Uvarint(src)
	if k <= 0 {
		return 0, src, false
	}
	return v, src[k:], true
}

// chunk reads a uvarint length and that many bytes, checking the length
// against what is left before slicing.
func chunk(src []byte) (b, rest []byte, ok bool) {
	n, rest, ok := uvarint(src)
	if !ok || n > uint64(len(rest)) {
		return nil, src, false
	}
	return rest[:n:n], rest[n:], true
}
