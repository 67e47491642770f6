// Package router knows who is connected where: which gateway node holds
// which device of which user.
//
// The Directory interface is implemented in memory by backends/memory (the
// single-box default) and on Redis by backends/redis. Gateways Register a
// Route once a connection is authenticated and before it reads its inbox;
// the chat Service Lookups routes after an entry is durable. That order is
// what makes offline sync race-free (docs/design.md).
//
// # Epochs
//
// A device that reconnects (a new connection on another node, a retried
// Register arriving late) may leave an older route behind. Route.Epoch
// orders one device's connections: a Directory that is also an
// EpochSource hands out increasing epochs; a route registered with epoch
// e replaces the device's routes with smaller positive epochs, and a
// Register whose epoch is smaller than one already recorded for the
// device fails with ErrSuperseded and records nothing. Epoch 0 keeps the
// old behaviour: routes coexist until they are unregistered.
package router
