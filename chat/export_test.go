package chat

import "context"

// MessageOf exposes the store's view of a message to tests.
func MessageOf(s *Service, ctx context.Context, id string) (MessageMeta, bool, error) {
	return s.store.Message(ctx, id)
}
