package presence

import (
	"context"
	"errors"
	"strings"
)

// Errors returned by the Service. Those a client causes map to error
// frames in the gateway.
var (
	// ErrClosed is returned by a Service used after Close.
	ErrClosed = errors.New("presence: closed")
	// ErrInvalidUser is returned for a user id that is empty, longer than
	// MaxUserBytes or holds a NUL byte.
	ErrInvalidUser = errors.New("presence: invalid user id")
	// ErrInvalidVisibility is returned by SetPrivacy for a Visibility that
	// is not Everyone, Contacts or Nobody.
	ErrInvalidVisibility = errors.New("presence: invalid visibility")
	// ErrTooManySubscriptions is returned by Subscribe when the connection
	// would watch more than Config.MaxSubscriptions users; nothing of the
	// call is subscribed.
	ErrTooManySubscriptions = errors.New("presence: too many subscriptions")
	// ErrTooManyContacts is returned by AddContacts when the user would
	// have more than Config.MaxContacts contacts; nothing is added.
	ErrTooManyContacts = errors.New("presence: too many contacts")
)

// MaxUserBytes is the longest user id accepted, the same bound as a token
// subject (auth.MaxIDBytes).
const MaxUserBytes = 128

func validUser(u string) bool {
	return u != "" && len(u) <= MaxUserBytes && strings.IndexByte(u, 0) < 0
}

// Visibility says who may see one part of a user's presence.
type Visibility uint8

// Visibilities. The zero value is Everyone, the default of every user.
const (
	Everyone Visibility = iota // any user
	Contacts                   // the users in the owner's contacts
	Nobody                     // no one but the owner
)

// String returns the wire name of v: "everyone", "contacts" or "nobody".
func (v Visibility) String() string {
	switch v {
	case Everyone:
		return "everyone"
	case Contacts:
		return "contacts"
	case Nobody:
		return "nobody"
	}
	return "invalid"
}

// ParseVisibility parses a wire name; see String.
func ParseVisibility(s string) (Visibility, bool) {
	switch s {
	case "everyone":
		return Everyone, true
	case "contacts":
		return Contacts, true
	case "nobody":
		return Nobody, true
	}
	return 0, false
}

// Valid reports whether v is one of the three visibilities.
func (v Visibility) Valid() bool { return v <= Nobody }

// admits reports whether a setting of v lets a viewer through, given
// whether the viewer is in the owner's contacts.
func (v Visibility) admits(inContacts bool) bool {
	return v == Everyone || v == Contacts && inContacts
}

// Privacy is one user's presence settings. The zero value shows both parts
// to everyone. Settings are reciprocal: see the package documentation.
type Privacy struct {
	LastSeen Visibility // who sees the user's last seen, and whose the user sees
	Online   Visibility // who sees whether the user is online, and whose the user sees
}

// Valid reports whether both settings are valid.
func (p Privacy) Valid() bool { return p.LastSeen.Valid() && p.Online.Valid() }

// Conn is one client connection: a subscriber, and the address of pushes.
type Conn struct {
	User string // the authenticated user
	Node string // gateway node holding the connection
	ID   uint64 // connection id, unique within Node
}

// Pusher delivers presence frames to connections.
type Pusher interface {
	// Push queues frame (a complete JSON server frame) for to. frame is
	// valid only during the call: copy it to keep it. Push must not block
	// and must not call the Service; it is called from any goroutine, with
	// the pushed user's state locked, so that the pushes about one user
	// reach a connection in order.
	Push(to Conn, frame []byte)
}

// Record is what a Store keeps about one user.
type Record struct {
	Privacy  Privacy
	Contacts []string // sorted, without duplicates
	LastSeen int64    // unix milliseconds; 0 if never saved
}

// Seen is one user's last seen, as saved by the flusher.
type Seen struct {
	User     string
	LastSeen int64 // unix milliseconds
}

// Store is the durable home of presence settings, contacts and last seen.
// Every method is safe for concurrent use, and a write is durable when it
// returns nil (it survives a crash, by the backend's guarantees) and seen
// by every later Load. User ids passed to a Store are valid (1 to
// MaxUserBytes bytes, no NUL); a Store may reject others.
type Store interface {
	// Load returns user's record. found is false, with a zero Record, for
	// a user with nothing stored. Contacts is the caller's to keep.
	Load(ctx context.Context, user string) (rec Record, found bool, err error)

	// SavePrivacy replaces user's privacy settings.
	SavePrivacy(ctx context.Context, user string, p Privacy) error

	// AddContacts adds contacts to user's contacts; those already there
	// are kept. The store does not bound their number: the Service does.
	AddContacts(ctx context.Context, user string, contacts []string) error

	// RemoveContacts removes contacts from user's contacts; those not
	// there are ignored.
	RemoveContacts(ctx context.Context, user string, contacts []string) error

	// SaveLastSeen replaces the last seen of each user in seen, in one
	// write where the backend can. Each user appears at most once.
	SaveLastSeen(ctx context.Context, seen []Seen) error
}
