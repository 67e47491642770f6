// Package kafka is the chat.Bus on Apache Kafka, through
// github.com/twmb/franz-go (kgo for clients, kadm for topics): deliveries
// to gateway nodes, the event streams, and a generic per-node channel for
// request replies (SendNode, HandleNode).
//
// # Topics
//
// Every topic name starts with Config.TopicPrefix (default "sb."). In the
// node or stream name, letters, digits, '.' and '-' stand for themselves
// and every other byte (including '_') becomes '_' and two hex digits, so
// distinct names never share a topic; a name making a topic longer than
// 249 bytes is refused (ErrInvalidName).
//
//   - PREFIX+"node."+node: what one gateway node must deliver to its own
//     connections. One partition. Created by the node's first Subscribe,
//     with retention.ms and segment.ms Config.NodeRetention (default 1h):
//     deliveries are read live or not at all, the inbox is the truth.
//   - PREFIX+"stream."+topic: a stream (chat.StreamEvents, ...).
//     Config.StreamPartitions partitions (default 8), retention.ms
//     Config.StreamRetention (default 7 days). Created by Consume,
//     ConsumeGroup and EnsureStreams, or in the background by the first
//     Emit (values emitted before it exists may be lost: call
//     EnsureStreams at start-up for the streams a process emits).
//
// Created topics get Config.ReplicationFactor (default 3) and
// min.insync.replicas Config.MinInsyncReplicas (default 2). A topic that
// exists is used as it is.
//
// # Records
//
// A node topic's record value is a kind byte and a payload. Kind 'd'
// (KindDelivery) is a chat.Delivery, in binary: the shared part once,
// then per item the user, seq, conn and head, lengths and numbers as
// uvarints. It is decoded into one chat.Delivery per subscription, reused:
// Shared and the heads are slices of the record, and each Item.User a
// string over the record's bytes (records are never reused, so the string
// stays valid, but keeping it keeps the record in memory: clone what you
// keep). Kind 'D' (KindFencedDelivery) is the same preceded by a uvarint,
// the publishing sequencer's epoch (chat.Delivery.Epoch, not 0); kind 'P'
// (KindPartitionDelivery) is preceded by two, the sequencer's partition
// (chat.Delivery.Partition, not 0) and its epoch. Other
// kinds are SendNode's and PostNode's, handed to the HandleNode handler of
// that kind. A record that is empty, does not decode, or has a kind with
// no handler is counted (Stats) and skipped: a peer writing garbage to
// the topic cannot stop the node. A stream record's key is the Emit key,
// its value the value.
//
// # Clients
//
// One producer client per Bus: idempotent (never disabled), acks=all, no
// transactions (Jepsen found aborted reads and lost writes in Kafka's
// transaction protocol in 2024), no linger (franz-go batches while a
// request is in flight), no compression (snappy measured no better for
// these small records, below), metadata loads allowed every 100 ms
// (franz-go's 5 s would hold the first Publish to a newly subscribed
// node for up to 5 s). Each Subscribe'd node, Consume and
// ConsumeGroup has a consumer client of its own, so a slow handler of one
// never delays another. Subscribe and Consume assign their partitions
// directly (no consumer group), at the end offsets they read before
// returning: every record appended after they return is seen.
//
// Publish to a node with no topic (a stale route) returns nil after one
// metadata request, and then at once for Config.MissingNodeRecheck
// (default 1s), from a cache; the producer never sees the missing topic,
// where franz-go would retry it for 1 s (10 s the second time, its
// metadata loads being 5 s apart) before failing. Existing node topics
// are cached until a produce says the topic is gone.
//
// # Ordering
//
// A node receives its records in the order the brokers appended them;
// the Publishes (and SendNodes) one goroutine makes one after the other
// are appended in that order. A stream's values of one key are in one
// partition: Consume gets them in emit order (Emits from one goroutine);
// so does ConsumeGroup, except that values handled but not committed when
// a member leaves or dies are handled again by the next owner.
//
// # Delivery guarantees
//
// Publish returns nil once min.insync.replicas brokers have the record:
// the subscribed node receives it unless its consumer is more than
// NodeRetention behind, or it was not subscribed when the record was
// appended. Deliveries are best effort (chat.Bus): a lost one is still in
// the inbox. Consume gets each value appended while it runs, at most once.
// ConsumeGroup gets each value at least once: offsets are committed (every
// 5 s, on a rebalance and on cancel) only past values whose handler
// returned.
//
// # When Kafka is down
//
// Publish does not wait: a delivery Kafka does not take is counted
// (Stats.PublishErrors) and its entries wait in the inboxes. SendNode
// waits for the acknowledgement at most Config.PublishTimeout (default
// 2 s; ctx may cut it shorter) and returns an error wrapping
// context.DeadlineExceeded; once MaxBufferedRecords records wait, records
// fail at once (kgo.ErrMaxBuffered). A record already sent when
// the wait ended may still be appended when Kafka answers (once: the
// producer is idempotent), a late delivery the gateway handles as any
// other. Emit never waits: values are buffered (up to
// Config.MaxBufferedRecords, default 65,536, shared with Publish) and sent
// when Kafka is back; past that they are dropped, counted
// (Stats.Dropped) and logged at most once per 10 s. Subscribe, Consume and
// ConsumeGroup fail after Config.AdminTimeout (default 10 s). Running
// subscriptions and consumers reconnect by themselves and resume where
// they were: nothing needs to subscribe again (TestBrokerRestart).
//
// # Consumed
//
// Consumed (chat.StreamWatcher) reports true for streams with a Consume or
// ConsumeGroup on this Bus, and for Config.ExternalStreams. Consumers in
// other processes are not seen: a process that emits analytics for an
// outside pipeline must list the stream in ExternalStreams, or the Service
// skips building the events.
//
// # Not done
//
// SASL and TLS (the brokers are reached in plain text on a private
// network). Deleting the topics of nodes that are gone (gateway node ids
// are per process: each start makes a topic; they hold nothing after
// NodeRetention but stay listed).
//
// # Figures
//
// On the test broker (one KRaft node on loopback, on 2 cores shared with
// other engineers' tests: load average 5 to 10, so the spread between
// runs is wide), a one-item delivery with a 100-byte body:
//
//	go test -run XXX -bench . -benchtime 3s ./backends/kafka/
//	go test -run XXX -bench Publish -benchtime 2s -count 3 ./backends/kafka/
//
//	Publish to handler receipt, one at a time: p50 0.8 to 1.2 ms,
//	  p99 5.5 to 6.4 ms (one outlier run: 2.1 ms, 25 ms)
//	Publish with 64 in flight: 12,500 to 21,000 deliveries/s
//	snappy instead of none: the same within that spread (records this
//	  small do not compress), so the default stays none
//	Emit until acknowledged: 1.6 to 1.9 µs per value, 2 allocations
//	decoding a 1,024-item delivery: 35 to 45 µs, no allocation
package kafka
