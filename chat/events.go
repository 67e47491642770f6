package chat

import (
	"strconv"

	"github.com/switchboard/switchboard/protocol"
)

// Analytics events: one JSON object per user action, emitted on the bus's
// StreamEvents topic keyed by user, once the action is durable (for what
// the Service stores) or done. docs/events.md documents every type; new
// fields may be added, never renamed.
//
// An Event is built with NewEvent and its With* methods, then emitted; its
// zero value is not used.
type Event struct{ b []byte }

// NewEvent starts an event of type typ by user at ts (unix ms).
func NewEvent(typ, user string, ts int64) *Event {
	e := &Event{b: make([]byte, 0, 128)}
	e.b = append(e.b, `{"type":`...)
	e.b = protocol.AppendString(e.b, typ)
	e.b = append(e.b, `,"ts":`...)
	e.b = strconv.AppendInt(e.b, ts, 10)
	e.b = append(e.b, `,"user":`...)
	e.b = protocol.AppendString(e.b, user)
	return e
}

// Str adds a string field.
func (e *Event) Str(key, v string) *Event {
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, key...)
	e.b = append(e.b, '"', ':')
	e.b = protocol.AppendString(e.b, v)
	return e
}

// Int adds an integer field.
func (e *Event) Int(key string, v int64) *Event {
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, key...)
	e.b = append(e.b, '"', ':')
	e.b = strconv.AppendInt(e.b, v, 10)
	return e
}

// Bool adds a boolean field.
func (e *Event) Bool(key string, v bool) *Event {
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, key...)
	e.b = append(e.b, '"', ':')
	e.b = strconv.AppendBool(e.b, v)
	return e
}

// Strs adds an array of strings.
func (e *Event) Strs(key string, v []string) *Event {
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, key...)
	e.b = append(e.b, '"', ':')
	e.b = protocol.AppendStrings(e.b, v)
	return e
}

// Bytes returns the event's JSON.
func (e *Event) Bytes() []byte { return append(e.b, '}') }

// analytics queues an event for the post stage, which emits it if the
// batch commits.
func (b *building) analytics(user string, e *Event) {
	b.c.events = append(b.c.events, queuedEvent{user: user, value: e.Bytes()})
}

// wantEvents reports whether anyone consumes analytics events: building
// them costs a few allocations per request.
func (s *Service) wantEvents() bool {
	w, ok := s.bus.(StreamWatcher)
	return !ok || w.Consumed(StreamEvents)
}

type queuedEvent struct {
	user  string
	value []byte
}
