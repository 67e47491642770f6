package cluster

import (
	"context"

	"github.com/switchboard/switchboard/chat"
)

// LogForwarder is the chat.Forwarder of a partitioned worker: it appends
// a sequencer's forwards to the command log, where the target
// partition's sequencer reads them like any command (with no node to
// answer: Worker.Handle sends no reply for them).
type LogForwarder struct{ log Log }

// NewLogForwarder returns a Forwarder appending to log.
func NewLogForwarder(log Log) *LogForwarder { return &LogForwarder{log: log} }

var _ chat.Forwarder = (*LogForwarder)(nil)

// Forward appends r to partition p and waits until the log has it
// durably, or ctx ends.
func (f *LogForwarder) Forward(ctx context.Context, p int, r *chat.Request) error {
	value := AppendCommand(nil, "", 0, r)
	done := make(chan error, 1)
	if err := f.log.Append(p, value, func(err error) { done <- err }); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
