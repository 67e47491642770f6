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
// seq becomes visible only once its batch is durable (chat.Store). The
// command log has one partition, consumed by the workers' consumer
// group, so one worker at a time runs the Service; the others stand by
// and one takes over when it fails (Kafka reassigns the partition).
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
// # Why one partition
//
// A batch writes several users' inboxes (a message goes to its recipient
// and to its sender's other devices; a group message to every member)
// and the same users' seqs are allocated by the batches of other
// conversations. Splitting the sequencer by user needs each inbox append
// forwarded to its owner's partition, a second hop; until then the
// workers scale by standing by, and the gateways, which hold the
// connections, scale out. docs/design.md ("Scaling out") has the
// numbers and the plan.
package cluster
