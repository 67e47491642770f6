// Package cassandra is the chat store (chat.Store, chat.ClientIDLister)
// and the presence store (presence.Store) of a distributed deployment, on
// Apache Cassandra through github.com/apache/cassandra-gocql-driver/v2.
//
// Open checks the schema and never changes it; Migrate (the `switchboard
// migrate` command) creates the keyspace and applies the versioned CQL
// files in migrations/, recording each in schema_migrations (version,
// name, checksum, applied_at). Open returns ErrSchemaBehind when a
// migration of the binary is missing, ErrChecksumMismatch when an applied
// one was edited; a schema ahead of the binary is accepted (migrations
// only add), so binaries can roll after the schema.
//
// # Data model
//
// Every table's partition key starts with ns, Config.Namespace: stores
// that share a keyspace never see each other's rows (the tests give each
// store its own, one keyspace per test binary; a deployment leaves it
// empty). Ids, user ids and keys are blobs: their exact bytes, ordered as
// bytes.
//
//	inbox         ((ns, uid, bucket), seq)      frame, shared, msg_id
//	heads         ((ns, uid))                   seq
//	shared_parts  ((ns, k))                     data
//	messages      ((ns, id))                    from_user, to_user, client_id, ts, seq, status
//	client_ids    ((ns, from_user), client_id)  id, to_user, ts, seq, status
//	state         ((ns, part), k)               value
//	batches       ((ns, bucket), btime, id)     items
//	batch_buckets ((ns, day), bucket)
//	cursors       ((ns, name))                  pos
//	presence      ((ns, uid))                   last_seen_vis, online_vis, last_seen, contacts set<blob>
//	leases        ((ns, shard))                 epoch, owner, acquired_at
//
// An inbox entry is an immutable row keyed by (user, seq). A partition
// holds 1,024 consecutive seqs of one user (bucket = seq >> 10): about
// 200 KiB for message heads of ~100 bytes and a shared tail elsewhere, so
// a busy inbox is many bounded partitions, and a sync of up to 1,024
// entries reads one or two. msg_id is the id of the message whose entry
// this is (the batch's message with To = user and Seq = seq), for fencing.
//
// A chat.SharedPart (a frame's tail) named by more than
// Config.InlineShared entries of its batch (default 2; a group message
// names it once per member) is stored once in shared_parts, and the
// entries' shared column names it; a read fetches the parts of the
// entries it returns with one IN request per inbox partition read. A part
// named by fewer (a one-to-one message: the recipient's entry and the
// sender's own copy) is copied into the entries' frames instead: twice the
// tail's bytes, but a sync of one-to-one messages reads one partition
// (compare BenchmarkReadInbox/OneToOne and /Group), and Apply writes one
// row less per message.
//
// heads holds each user's LastSeq: one cell, written by Apply after the
// entries, never deleted (so LastSeq does not decrease when entries
// expire), not a counter (counters are not idempotent).
//
// messages is keyed by the server's message id, an upsert (status
// updates rewrite it). client_ids is the idempotency index, one partition
// per sender, so ClientIDs (chat.ClientIDLister) is one partition read;
// it copies the message's fields, so MessageByClientID reads one row.
//
// # State
//
// A state record (chat.KV) is in partition part, clustering key k, with
// part+k the record's key, chosen so that every prefix the chat Service
// scans is one partition, read in clustering (byte) order:
//
//   - keys of the tables the Service scans whole, au/, at/ and az/ (assets
//     by creation time, unused blobs): part is the table ("au/"), so
//     ScanState("au/") is one partition. These partitions grow with the
//     number of live assets (about 60 bytes a row); bucketing them by time
//     is future work.
//   - other keys holding a NUL: part is the key up to and including its
//     first NUL ("w/<group>\x00", "ag/<asset>\x00", "ahx/<hash>\x00"), so
//     a group's watermarks or an asset's grants are one partition, and a
//     scan of "ag/<asset>\x00#" a range within it.
//   - any other key ("g/<group>", "u/<user>", "as/<asset>"): its own
//     partition, read by GetState.
//
// A prefix that spans partitions (ScanState("") or ("g/"), which the
// Service never asks for) is served correctly by a scan of the whole
// state table, sorted in memory: as costly as the table is large.
//
// # Consistency and idempotency
//
// Every read and write is at Config.Consistency, LOCAL_QUORUM by default:
// a read sees every write that returned, in the local data center. Every
// statement but the lease's compare-and-set is idempotent (an insert or
// delete of fixed keys with an explicit timestamp, a set add or remove)
// and marked so; the driver's retry policy (exponential backoff, 3
// retries) retries only those. Statement texts are constants with bind
// markers, so each is prepared once per connection. Requests go to a
// replica of their partition first (token-aware over round robin, or over
// DC-aware round robin when Config.LocalDC is set).
//
// # Atomicity
//
// A Cassandra LOGGED batch is all or nothing, eventually (the batchlog
// replays it), but not isolated, and no batch may exceed the server's
// batch_size_fail_threshold (50 KiB by default), while a group message to
// 1,024 members writes 1,025 entries. So Apply writes in two phases, the
// second begun only once the first succeeded at LOCAL_QUORUM:
//
//  1. in parallel: the entries, stored shared parts, the retention row,
//     the messages and their client ids (one request per partition: a
//     single-partition batch is one atomic mutation and exempt from the
//     size thresholds; or, with Config.BatchEntries, multi-partition
//     UNLOGGED batches of at most Config.BatchBytes: fewer requests, more
//     work for the coordinator, about twice the throughput on one node),
//     and the state records in LOGGED batches of at most
//     Config.BatchBytes (usually one), so that a command's records (a
//     group and its members' watermarks) land all or none;
//  2. the heads, in LOGGED batches of at most Config.BatchBytes.
//
// Readers of an inbox read its head first and never read past it. A head
// is written only after every entry of the batch is on a quorum, so a
// reader never sees an entry that a crash could take back, nor part of a
// user's entries of a batch. When Apply returns nil, both phases are
// on a quorum: durable by replication (each replica's commit log is
// synced periodically, every 10 s by default: a write survives the loss
// of fewer than a quorum of replicas at once, not the power loss of the
// whole quorum within that window).
//
// ApplyAsync (chat.PipelinedStore) lets the Service start a batch before
// the previous one has returned: batches are chained in the order they
// were started; a batch's first phase begins once the previous one's
// first phase is over, so of two batches' writes of one cell (a message's
// status) the later carries the larger timestamp, and its heads once the
// previous batch has returned, so heads become visible in batch order.
// A batch that fails fails those started while it was in flight
// (chat.ErrEarlierBatch), their heads unwritten.
//
// If Apply fails part way (the Service then drops its caches and rereads
// heads), entries above the head stay unread and are overwritten by the
// next batch for those seqs (its timestamps are larger). Messages and
// client ids of the first phase may be visible without their entries
// having become visible; MessageByClientID therefore reports a message
// only if its entry is absent (expired) or holds that message at or below
// the head, so a resend is taken as new. State of a failed batch larger
// than one LOGGED batch may be partly visible. Heads of a batch larger
// than one LOGGED batch (a fan-out to a few hundred users or more) go in
// several: a failure between them leaves the message visible to some
// members only; the send is reported failed.
//
// # Fencing
//
// The Service is the single committer of its users; in a distributed
// deployment a worker that takes over a shard calls AcquireLease, which
// raises the shard's epoch with a lightweight transaction (once per
// takeover, never on the message path), and SetWriterEpoch. Every write of
// Apply and Expire then carries the timestamp epoch<<44 | µs since
// SetWriterEpoch (kept strictly increasing per Store, and below 2^44 µs,
// 203 days, after which writes fail with ErrEpochExhausted until a new
// lease), set as the request's timestamp (the protocol's equivalent of
// USING TIMESTAMP). Cassandra keeps, for each cell, the write with the
// largest timestamp, so any write of a newer epoch beats any write of an
// older one: a paused "zombie" worker that resumes after losing its shard
// cannot overwrite the new owner's entries, heads, messages or state,
// whichever order the writes arrive in.
//
// A zombie can still write rows the new owner has not written yet. Its
// entries are invisible until the owner's head passes them, and the
// owner's own write of that seq then replaces them. Its messages and
// client ids stay, but MessageByClientID checks that the message's inbox
// entry (To, Seq) carries the message's id in msg_id; if it holds another
// message (the owner's), the zombie's message is not found and a resend is
// taken as new.
//
// A Store writes nothing at epoch 0, before SetWriterEpoch
// (ErrNoWriterEpoch): two successive writers at one epoch would order
// their writes by their uptimes, and a restarted server's head or status
// writes could silently lose to its previous run's. A server takes a
// lease each time it starts, even alone.
//
// # Retention
//
// Expire deletes explicitly; TTLs cannot express "the batches whose Time
// is before t" for a t chosen at each call, nor count them. Each Apply
// writes one batches row (in the minute bucket of Batch.Time) listing what
// the batch wrote: each user's span of seqs, shared part keys, and each
// message's id, sender and client id; a status update lists its message
// again, and the first of its batches to expire deletes it. batch_buckets
// lists the buckets, one partition per day. Expire walks the buckets from
// the "expire" cursor (or, on the first run, the "first" cursor: the
// lowest bucket ever written, kept as a min-register by writing
// MaxInt64-bucket at timestamp 1, since of equal timestamps Cassandra
// keeps the larger value) up to the cut; for each batch before the cut it
// deletes the entries (one range tombstone per inbox partition), parts,
// messages and client ids, then the batch's row, and counts it. Buckets
// wholly before the cut are deleted and the cursor moves to the cut's
// bucket, so each run reads only what is new. A batch applied with a
// Time before an earlier Expire's cut is never expired (the Service
// stamps batches with the current time). Deletes carry the Store's write
// timestamps, so Expire runs on the committer's Store.
//
// # Presence
//
// One row per user: privacy (two tinyints), last seen, and contacts as a
// set of blobs (adding or removing contacts is one idempotent write, a
// Load one row, already sorted). Presence writes use ordinary timestamps:
// the presence Service is not fenced.
package cassandra
