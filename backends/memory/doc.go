// Package memory holds in-process implementations of Switchboard's core
// interfaces: a chat.Store, a chat.Bus and a router.Directory.
//
// Directory and Bus are the single-box defaults: every gateway and the
// Service share one process, so routes and deliveries never leave memory.
// Store is not durable and exists for tests and benchmarks; the single-box
// durable store is backends/disk.
//
// Every type is safe for concurrent use and must be created with its New
// function.
package memory
