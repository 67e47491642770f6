// Package plan is the capacity planner behind `switchboard plan`: a pure
// model from Inputs (users, their habits, the per-box figures measured by
// `switchboard loadtest`, and stated assumptions about Kafka, Cassandra and
// Redis) to a Plan (the count of each tier, with every step that led to
// it). docs/capacity.md shows it run with the design's inputs and with
// ours, and explains the model.
//
//	in := plan.Defaults()
//	in.DAU = 50_000_000
//	p, err := plan.Compute(in)      // validates first
//	plan.WriteText(os.Stdout, p)   // or WriteJSON
//
// # Inputs
//
// Fields lists every input: its key (in an input file, in JSON, and as a
// flag with "-" for "_"), unit, default and the basis of the default:
// "measured:" (docs/benchmarks.md, this machine), "assumed:" (a public
// figure or a guess, with its source), "design:" (the design's estimate),
// "setting:" (a server default). A plan prints each input with its basis;
// one that differs from its default is "given" unless it says where it
// came from (ReadLoadtest records the report).
//
// The defaults are the design's workload (100 million daily users, every
// one connected at the peak, which its "about 1,600 gateways" implies) on
// our measured gateway figures. DesignConnsPerBox (60,000) as conns_per_box
// reproduces the design's estimate: 1,667 gateways.
//
// # The model
//
// Every quantity is a Step: a key, a formula over inputs and earlier
// steps, a value. The peak load is the day's average message rate times
// peak_factor; connections at the peak are dau × online_share. Each tier is
// sized by every resource that can bound it, and takes the largest:
//
//   - gateways: connections per box bounded by memory (gateway RSS plus
//     kernel memory per connection, over the usable share of the box) and
//     by CPU (the deliveries its connections carry at the peak, at the
//     measured messages per core), or given; and the reconnect storm
//     (every connection back within reconnect_seconds at the measured
//     upgrades per core).
//   - workers: deliveries at the peak over worker throughput per core.
//   - Kafka: a messages topic (gateways → workers) and a deliveries topic
//     (workers → recipients' gateways, a partition per gateway at least);
//     partitions by throughput and consumers, brokers by write bandwidth
//     with replication, by partition replicas, and by disk over retention.
//   - Cassandra: a message stored once plus an inbox entry per recipient
//     and one for the sender's other devices; nodes by disk (replication,
//     on-disk overhead, room for compaction) and by replica writes.
//   - object storage: files per day times their size, over media retention.
//   - Redis: a route per connection and presence per user; shards by
//     memory and by commands per second, times (1 + replicas).
//   - network: the gateways' client links in and out (frames, acks,
//     receipts), files in and out, and the back end's own traffic.
//
// Throughput-bound tiers are planned at utilization of their capacity.
// What is not modelled is said in docs/capacity.md (reads by syncs,
// presence fan-out, typing).
//
// # Load-test reports
//
// ReadLoadtest parses the JSON of `switchboard loadtest
// idle|connect|chat|day --json FILE` with its own minimal structs
// (scenario, params.mode, interrupted, environment.cpus, figures by name,
// errors, cpu.server_percent), tolerant of every other field, and returns
// the inputs it measures; its doc lists the figures it reads.
//
// # Concurrency
//
// Compute, ReadLoadtest, WriteText and WriteJSON keep no state and are safe
// from any goroutine; an Inputs or a Plan is not safe to change from one
// goroutine while another reads it.
package plan
