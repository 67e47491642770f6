// Package tuning checks whether a box's kernel and open-file limits let
// it hold a number of connections, and writes the configuration that
// would: `switchboard tune check` and `switchboard tune apply`, and the
// gateway's own check at start.
//
// [Check] reads /proc under a root directory ("/" on a live machine, a
// fake tree in tests) and a process's RLIMIT_NOFILE (this process's, or
// one given), and returns a [Report]: one [Setting] per limit that bounds
// connections, with the current value, the value needed, a [Status], why
// and how to change it; the memory arithmetic; the connections the box
// holds as configured; and which settings stop the count asked for.
//
// Statuses: [Limit] caps the connections below the count (the count is
// not reachable until it changes); [Low] is below what is advised (a
// reconnect storm is slower, a traffic burst meets memory pressure) but
// does not cap the count; [Info] rows do not bound a gateway (they bound
// load generators and proxies, or are often thought to); [Unknown] rows
// could not be read and decide nothing.
//
// [Report.Files] turns a report into a sysctl.d file, a systemd drop-in
// (LimitNOFILE) and limits.d lines; [WriteFiles] writes them under a
// directory. Nothing in this package changes a running setting except
// [RaiseFileLimit], which raises the calling process's own soft open-file
// limit to its hard limit.
//
// The memory figures per connection ([DefaultKernelBytesPerConn],
// [DefaultGatewayBytesPerConn]) were measured on the project's box;
// docs/tuning.md says how to measure them on another.
package tuning
