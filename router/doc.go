// Package router knows who is connected where: which gateway node holds
// which device of which user.
//
// The Directory interface is implemented in memory by backends/memory (the
// single-box default) and by distributed engines in later backends. Gateways
// Register a Route once a connection is authenticated and before it reads
// its inbox; the chat Service Lookups routes after an entry is durable. That
// order is what makes offline sync race-free (docs/design.md).
package router
