package chat

import "context"

// MessageOf exposes the store's view of a message to tests.
func MessageOf(s *Service, ctx context.Context, id string) (MessageMeta, bool, error) {
	return s.store.Message(ctx, id)
}

// BuiltWaiting reports how many built batches wait for the applier.
func BuiltWaiting(s *Service) int { return len(s.apply) }
