// Package disk is the durable single-box chat.Store, on Pebble (an LSM
// key-value store: cockroachdb/pebble).
//
// The workload is append-heavy: the Service applies one batch per group of
// messages, each batch one Pebble batch committed with Sync, so a batch is
// one WAL write and one fsync (Pebble also merges the fsyncs of concurrent
// commits). Reads are point Gets and short bounded range scans. Retention
// is driven by an index, so Expire never scans the whole store.
//
// # Key layout
//
// All keys start with a one-letter table and a slash. Integers are
// big-endian so that byte order is numeric order. User ids may hold any
// byte except NUL, which separates them from what follows; Apply and the
// readers reject ids with a NUL (ErrInvalidUser).
//
//	i/<user>\x00<seq u64>           → frame                one per inbox entry
//	                                  or 1, start len, frame the first entry of a shared part: holds it
//	                                  or 2, owner key, start another entry of that part
//	                                  or 0, frame            a frame starting with byte 0 to 2
//	k/<key>                         → state record         groups, watermarks (chat.KV)
//	p/<user>\x00c<contact>          → empty                one per contact (presence.go)
//	p/<user>\x00l                   → last seen (u64 ms)   written by the presence flusher
//	p/<user>\x00p                   → privacy              version, last seen and online visibility
//	s/<user>                        → seq (u64)            highest seq Expire deleted
//	m/<id>                          → MessageMeta (below)  one per message
//	c/<from>\x00<clientID>          → id                   idempotency index
//	x/<time u64><epoch u64><n u64>  → keys written         retention index, one per batch
//	o/format                        → format version (u64) checked at Open
//	o/epoch                         → opens so far (u64)   makes x/ keys unique
//
// LastSeq is the seq of the user's last i/ key (one reverse seek), or, once
// all have expired, s/<user>: Expire writes there the highest seq it
// deletes, so LastSeq never decreases. Apply writes no head key: a group
// message to 1,024 members writes 1,024 inbox keys, not 2,048. (Stores
// written before this kept s/ as the head on every Apply; the max of the
// two is right for both.)
//
// An x/ key orders batches by Time: <time> is Batch.Time in unix
// nanoseconds with the sign bit flipped (so that the order holds before
// 1970 too), then the Open count and a per-Open counter that tell apart
// batches with the same Time. Its value lists what the batch wrote, each
// item as a uvarint length and bytes: M/<id> for a message whose inbox
// entry is in the same batch (Expire reads its metadata and deletes m/<id>,
// its c/ key and its i/ entry: one item instead of three keys, a third of
// the bytes a message costs), the m/ and c/ keys of any other message (a
// status upsert), and the i/ key of any other entry (receipts). Expire scans x/ up
// to its cut, deletes what the items name and the x/ key, and commits every
// expireBatchKeys deletions. A message written again by a later batch goes
// with the first of its batches to expire. (Stores written before M/ items
// existed list every key; Expire handles both.)
//
// A MessageMeta is encoded as a version byte (1), then ID, From, To and
// ClientID each as a uvarint length and bytes, TS as a varint, Seq as a
// uvarint and Status as one byte.
//
// # Tuning
//
// Options defaults suit a 24 GiB box that also runs the gateway: a 512 MiB
// block cache, eight 64 MiB memtables, L0 compacted at 16 sublevels into a
// 512 MiB Lbase, one compaction per two CPUs, and a 10-bit bloom filter on
// every level. Options documents what each was measured to do.
package disk
