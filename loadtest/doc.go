// Package loadtest measures a running Switchboard server over its public
// protocol: `switchboard loadtest <scenario>` runs one Scenario and prints
// a Report (text, and JSON with --json).
//
// A report is also a self-contained HTML page with plots of the run
// (WriteHTML, --html; gonum/plot drawing inline SVG, so the page fetches
// nothing), and two saved reports compare side by side (ReadReport,
// Compare: ratios B/A, differences where A is 0, parameters that differ);
// `switchboard loadtest report` and `loadtest compare` are their commands.
//
// # Scenarios
//
//   - Idle: open N authenticated connections, sync each once, hold them
//     idle; report the server's RSS and the kernel's TCP memory per
//     connection. Past one process's open-file limit it re-executes itself
//     as worker processes (RunIdleWorker).
//   - Connect: N upgrades, C at a time, each closed at once; report
//     upgrades per second and connect/upgrade latency.
//   - Chat: sender→recipient pairs; open loop at a fixed total rate with
//     latency from each send's scheduled time (coordinated omission
//     corrected, as wrk2), or closed loop (--max) with a window of
//     in-flight sends per sender to find the highest sustained delivery
//     rate. Reports send→ack and send→receive percentiles (HDR), rates,
//     errors by code and missing messages after a bounded drain. Bodies
//     have a fixed size or one drawn from a distribution (SizeDist);
//     with Receipts, recipients answer every message with a read receipt
//     and senders measure send→read receipt. Past one process's open-file
//     limit (or with --processes N) it runs as a controller of chat worker
//     processes (RunChatWorker): each gets disjoint pairs and its share of
//     the rate and sends, all start at a common time (a "go" line), the
//     controller's meter takes their per-second progress lines (counts,
//     and the HDR histograms of the second), and their final totals merge
//     exactly: counts summed, durations maxed, histograms merged.
//   - Reconnect: the reconnect storm. N clients connect, then all drop at
//     once (a reset, or a close frame) and come back with jittered
//     backoff; report the time until all are back and synced and each
//     client's drop→synced.
//   - Day: a day in the life. Users' habits (daily active users, share
//     online at the peak, messages per user per day, peak factor) become
//     the peak hour's Chat load: Poisson arrivals, lognormal sizes, read
//     receipts.
//
// # Several gateways
//
// Config.URL (--url) names one endpoint, or several gateways of one
// distributed deployment separated by commas: connection i goes to
// gateway i mod n, and chat puts pair i's sender on gateway i mod n and
// its recipient on gateway (i+1) mod n (i counted over the whole run,
// across worker processes), so with two or more every message crosses
// from one gateway to another. The server's RSS and CPU are then the sum
// over --server-pid's list; /metrics is read from the first gateway.
//
// While a scenario runs, its Meter samples it every second into
// Report.Timeline (connections, rates, that second's latency percentiles,
// errors, server and generator CPU, server RSS) and keeps one status line
// up to date on the terminal. Every latency carries its HDR histogram, so
// runs and processes merge exactly (MergeLatencies), never by averaging
// percentiles.
//
// A new scenario is a struct implementing Scenario, wired in
// cmd/switchboard/loadtest.go.
//
// # Measuring honestly
//
// Tokens are minted locally with the server's secret, for user ids unique
// to the run, so runs never share inboxes. Every run reports the CPU time
// of the generator (getrusage, workers included) next to the server's
// (/proc/PID/stat or /metrics) over the measured window, so a reader can
// tell which side was saturated; on a small box both share the CPUs.
//
// The chat generator keeps its own cost low: each sender's frame is
// encoded and masked once (gobwas/ws), and each send only patches the ten
// masked digits of its index into the id and the body; server frames are
// parsed in place from one buffer per connection and classified by
// scanning for "type", with the index read back from the ack's id or the
// msg's body, never with encoding/json. A few writer goroutines own the
// senders (one write per connection per wake-up, no timer per send); each
// connection has one reader goroutine; latencies go to HDR histograms
// sharded by connection.
//
// # Bounds
//
// Every run stops by itself: dials, upgrades and first syncs are bounded
// by Config.DialTimeout, chat writes by a deadline past duration+drain,
// the drain by Chat.Drain, the sends by Chat.MaxSends. Canceling the
// context (Ctrl-C) stops the load at once and Run still returns the report
// of what was measured, marked Interrupted.
//
// Over several processes: waiting for "ready" is bounded by the setup's
// worst case, waiting for "done" by duration + drain + 60 s; a worker
// silent for 30 s, or past its bound, is killed; one that dies is counted
// in the report's errors and fails the run; Ctrl-C closes the workers'
// stdin and the merged report is still written.
//
// # Files
//
//	scenario.go  Scenario, Run, Env (dialing, users, probes), Environment
//	config.go    Config shared by all scenarios
//	conn.go      client connection: dial+upgrade, in-place frame reader
//	scan.go      frame classification, index patching, error kinds
//	hist.go      HDR histograms and Latency summaries
//	probe.go     server RSS/CPU, /proc/net/sockstat, getrusage, RLIMIT_NOFILE
//	report.go    Report, text and JSON output
//	meter.go     Meter: the per-second timeline and the status line
//	html.go      Report.WriteHTML: the page and its plots
//	compare.go   ReadReport, Compare, Comparison.WriteText
//	idle.go, connect.go, chat.go, reconnect.go, day.go   the scenarios
//	chatworker.go  chat over several processes: RunChatWorker, the controller, mergeChatTotals
package loadtest
