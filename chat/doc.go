// Package chat is Switchboard's messaging core: the domain types, the small
// interfaces it consumes (Store, Bus) and the Service that turns client
// requests into durable inbox entries and live deliveries.
//
// The core imports no backend. Embedded defaults live in backends/memory and
// backends/disk; distributed engines implement the same interfaces and are
// wired in cmd/.
//
// # Invariants
//
//   - The sender of a message is always the authenticated user, never a frame field.
//   - Every user has one inbox. Each entry (a message or a receipt addressed to
//     that user) carries a seq that is strictly increasing and gap-free.
//   - A message is acknowledged to its sender only after Store.Apply returned,
//     i.e. after it is durable.
//   - A delivery is published only after the entry it carries is durable, so a
//     device that registers its route before reading its inbox never misses an
//     entry (see docs/design.md, "Online/offline race").
package chat
