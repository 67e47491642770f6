package presence

import (
	"encoding/binary"
	"errors"
	"log/slog"
)

// EventKind is what happened to a connection.
type EventKind uint8

// Event kinds. Connected is an app event; Active and Inactive are user
// events; Disconnected is a user event when the connection was active and
// an app event otherwise (see the package documentation).
const (
	Connected    EventKind = iota + 1 // the connection is up; it starts inactive
	Active                            // the app is in the foreground and in use
	Inactive                          // the app went to the background
	Disconnected                      // the connection is gone
	// Settings says that the user's privacy or contacts changed (durable
	// in the store before the event is sent): every presence service that
	// holds them reloads them. Node and Conn are unused.
	Settings
)

// String returns the name of k.
func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Active:
		return "active"
	case Inactive:
		return "inactive"
	case Disconnected:
		return "disconnected"
	case Settings:
		return "settings"
	}
	return "invalid"
}

// Event is one input of the Service: a change of one connection of a user.
// A connection is identified by (Node, Conn); Device is carried for
// consumers of the event stream and does not change how an event is
// applied: presence is per user, whatever device is in use.
type Event struct {
	Kind   EventKind
	User   string
	Device string // device id from the auth token; "" is the default device
	Node   string // gateway node holding the connection
	Conn   uint64 // connection id, unique within Node
	TS     int64  // unix milliseconds at which the gateway saw it
}

// ErrBadEvent is returned by DecodeEvent for bytes that are not an event
// written by AppendBinary.
var ErrBadEvent = errors.New("presence: malformed event")

// eventVersion is the first byte of an encoded event.
const eventVersion = 1

// AppendBinary appends ev in its compact binary form and returns the
// extended slice: a version byte (1), the kind byte, User, Device and Node
// each as a uvarint length and bytes, Conn as a uvarint and TS as a varint.
// It does not allocate when dst has room. Unlike encoding.BinaryAppender it
// cannot fail, so it returns no error.
func (ev Event) AppendBinary(dst []byte) []byte {
	dst = append(dst, eventVersion, byte(ev.Kind))
	for _, s := range [...]string{ev.User, ev.Device, ev.Node} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendUvarint(dst, ev.Conn)
	return binary.AppendVarint(dst, ev.TS)
}

// DecodeEvent decodes one event written by AppendBinary; b must hold it
// exactly. The strings of the event are copies. It checks the framing and
// the kind, not the user id (Handle does).
func DecodeEvent(b []byte) (Event, error) {
	var ev Event
	if len(b) < 2 || b[0] != eventVersion {
		return ev, ErrBadEvent
	}
	ev.Kind = EventKind(b[1])
	if ev.Kind < Connected || ev.Kind > Settings {
		return ev, ErrBadEvent
	}
	b = b[2:]
	for _, dst := range [...]*string{&ev.User, &ev.Device, &ev.Node} {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return Event{}, ErrBadEvent
		}
		*dst = string(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	conn, w := binary.Uvarint(b)
	if w <= 0 {
		return Event{}, ErrBadEvent
	}
	ev.Conn, b = conn, b[w:]
	ts, w := binary.Varint(b)
	if w <= 0 || w != len(b) {
		return Event{}, ErrBadEvent
	}
	ev.TS = ts
	return ev, nil
}

// Consumer returns a handler for the bus's presence stream that decodes
// each event and applies it to s: the last-seen worker's loop. Events that
// do not decode are logged and skipped.
func Consumer(s *Service, log *slog.Logger) func(key string, value []byte) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(_ string, value []byte) {
		ev, err := DecodeEvent(value)
		if err != nil {
			log.Warn("presence: skipping an event that does not decode", "err", err)
			return
		}
		s.Handle(ev)
	}
}
