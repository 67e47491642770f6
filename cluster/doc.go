// Package cluster splits the messaging core across processes: gateways
// that hold sockets, and workers that own the sequencer (chat.Service)
// and the store. It knows nothing of Kafka: the command log and the reply
// channel are small interfaces (Log, Replier) that backends/kafka
// implements, and an in-memory pair drives the tests.
//
// # The request path
//
//	client ─ws→ gateway: Remote.Submit ─append→ command log (Kafka, acks=all)
//	                                              │ consumer group
//	                                              ▼
//	                  worker: Worker.Handle → chat.Service (batch, seq, store write)
//	                                              │ Complete
//	client ←ws─ gateway: Remote.OnReply ←reply─ node topic of the gateway
//
// A gateway's Remote implements what gateway.Service needs: Submit appends
// the request as a command (AppendCommand: the request, the gateway's
// node and a correlation id) and returns; the request completes when the
// worker's reply comes back on the node's own topic, which that gateway
// alone consumes, next to the deliveries for its connections. So "sent"
// means the same as on one box: the message is durable in the store, and
// Kafka acknowledged the command before that. A command the log fails
// completes with chat.ErrOverloaded at once (no false ack); one unanswered
// within ReplyTimeout too. Either way the client resends with the same
// client id, and a send that did commit is answered as the duplicate it
// is, with its original id. Inbox reads (sync, gap fill) go from the
// gateway to the store directly.
//
// # The sequencer and its fence
//
// Each user's inbox seq is allocated by one chat.Service: it is strictly
// increasing and gap-free because a single goroutine allocates it and a
// seq becomes visible only once its batch is durable (chat.Store). Each
// partition of the command log (kafka.CommandsConfig.Partitions, default
// one) has its own Service, the sequencer of the users whose inboxes the
// partition owns (chat.PartitionOf); the workers' consumer group gives
// each partition to one worker at a time, and another takes it over when
// that worker fails (Kafka reassigns the partition). Remote sends each
// request to the partition chat.Route names; a sequencer forwards the
// entries of other partitions' users through the log (LogForwarder,
// chat.Forwarder).
//
// A worker commits the partition's offset only past records whose
// requests have completed, that is whose writes are durable (Offsets).
// Killed between a store write and the offset commit, it leaves records
// that its successor reads again: a send comes back as a duplicate of
// its client id and allocates nothing; receipts and membership changes
// that already happened change nothing. So a restart leaves no gap and no
// second copy.
//
// The takeover is fenced in the store: the new owner takes a larger
// writer epoch (a lightweight transaction on the lease, once per
// takeover, never per message) and every write it makes carries a write
// timestamp above any of the previous epoch's. A former owner that was
// paused past its session (a "zombie") and resumes cannot overwrite what
// the new owner wrote, and its Kafka offset commits are refused (its
// generation is stale). Its deliveries carry its epoch
// (chat.Config.Epoch), and a gateway that has had one of its successor's
// drops them. The worker also starts a fresh Service on each assignment,
// so no cache of the previous ownership survives.
//
// # Partitions
//
// A message to a user of another partition reaches that user's
// sequencer as a forward: written to an outbox in the sender's batch,
// appended to the log by a relay once durable, applied once by the
// target (chat.Route and chat.Forwarder have the protocol,
// docs/design.md "Partitioned sequencers" the argument and the numbers).
package cluster
