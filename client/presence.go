package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
)

// Presence, privacy, contacts, devices and typing (protocol "Presence,
// last seen and privacy", "Typing", "Devices"). Each is a Request (see
// there); all are safe for concurrent use and must not be called from the
// Handler.
//
// The server keeps two things per connection: whether it is active, and
// the users it watches. The Client remembers both (SetActive, Subscribe)
// and restores them on every connect, right after the sync.

// maxUsersPerFrame is the most user ids the server takes in one frame.
const maxUsersPerFrame = 1024

// SetActive tells the server that the user is using the app (true: online,
// and last seen moves to now) or has put it in the background (false).
// A connection starts inactive; the Client remembers the last state set
// and sends it again on every connect. While connected, SetActive waits
// for the server's ack; while not, it returns nil and the state goes out
// on connect.
func (c *Client) SetActive(ctx context.Context, active bool) error {
	c.mu.Lock()
	c.active = active
	c.mu.Unlock()
	typ := "inactive"
	if active {
		typ = "active"
	}
	return offlineOK(c.call(ctx, typ, nil, nil))
}

// Subscribe watches users' presence: a Presence event for each right
// away, then one whenever what this user may see of them changes. The
// Client remembers the users and subscribes again on every connect (the
// server ends subscriptions with the connection). While not connected,
// Subscribe returns nil and the subscription is made on connect. A refusal
// (CodeTooManySubscriptions: a connection watches at most 1,024 users) is
// returned, and the users it names are not remembered.
func (c *Client) Subscribe(ctx context.Context, users ...string) error {
	if len(users) == 0 {
		return nil
	}
	c.mu.Lock()
	var added []string
	for _, u := range users {
		if _, ok := c.subs[u]; !ok {
			c.subs[u] = struct{}{}
			added = append(added, u)
		}
	}
	c.mu.Unlock()
	err := c.call(ctx, "presence.sub", map[string]any{"users": users}, nil)
	if errors.As(err, new(*ServerError)) {
		c.mu.Lock()
		for _, u := range added {
			delete(c.subs, u)
		}
		c.mu.Unlock()
	}
	return offlineOK(err)
}

// Unsubscribe stops watching users. While not connected it returns nil
// (the next connection will not watch them).
func (c *Client) Unsubscribe(ctx context.Context, users ...string) error {
	if len(users) == 0 {
		return nil
	}
	c.mu.Lock()
	for _, u := range users {
		delete(c.subs, u)
	}
	c.mu.Unlock()
	return offlineOK(c.call(ctx, "presence.unsub", map[string]any{"users": users}, nil))
}

// Subscriptions returns the users Subscribe watches, sorted.
func (c *Client) Subscriptions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	users := make([]string, 0, len(c.subs))
	for u := range c.subs {
		users = append(users, u)
	}
	slices.Sort(users)
	return users
}

// offlineOK maps "not connected" to nil, for the requests whose effect the
// Client restores on connect.
func offlineOK(err error) error {
	if errors.Is(err, ErrNotConnected) {
		return nil
	}
	return err
}

// restoreFrames returns the frames that give a new connection the state
// SetActive and Subscribe set: the replies to them are not awaited (an
// error is handed to the Handler).
func (c *Client) restoreFrames() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var frames [][]byte
	if c.active {
		frames = append(frames, []byte(`{"type":"active"}`))
	}
	users := make([]string, 0, len(c.subs))
	for u := range c.subs {
		users = append(users, u)
	}
	slices.Sort(users)
	for chunk := range slices.Chunk(users, maxUsersPerFrame) {
		b, err := json.Marshal(map[string]any{"type": "presence.sub", "id": NewID(), "users": chunk})
		if err != nil {
			continue // strings only: cannot fail
		}
		frames = append(frames, b)
	}
	return frames
}

// Visibility says who may see a part of the user's presence.
type Visibility string

// Visibilities (privacy.set).
const (
	VisibleEveryone Visibility = "everyone"
	VisibleContacts Visibility = "contacts"
	VisibleNobody   Visibility = "nobody"
)

// Privacy is who may see the user's last seen and online. It is
// reciprocal: hiding yours from someone hides theirs from you.
type Privacy struct {
	LastSeen Visibility `json:"last_seen,omitempty"`
	Online   Visibility `json:"online,omitempty"`
}

// Privacy returns the user's privacy settings.
func (c *Client) Privacy(ctx context.Context) (Privacy, error) {
	var p Privacy
	err := c.call(ctx, "privacy.get", nil, &p)
	return p, err
}

// SetPrivacy changes the settings that p sets (an empty field is left as
// it is) and returns them all.
func (c *Client) SetPrivacy(ctx context.Context, p Privacy) (Privacy, error) {
	fields := map[string]any{}
	if p.LastSeen != "" {
		fields["last_seen"] = p.LastSeen
	}
	if p.Online != "" {
		fields["online"] = p.Online
	}
	var out Privacy
	err := c.call(ctx, "privacy.set", fields, &out)
	return out, err
}

// Contacts returns the user's contacts (the "contacts" of Visibility).
func (c *Client) Contacts(ctx context.Context) ([]string, error) {
	var ack struct {
		Users []string `json:"users"`
	}
	err := c.call(ctx, "contacts.list", nil, &ack)
	return ack.Users, err
}

// AddContacts adds users to the user's contacts.
func (c *Client) AddContacts(ctx context.Context, users ...string) error {
	return c.call(ctx, "contacts.add", map[string]any{"users": users}, nil)
}

// RemoveContacts removes users from the user's contacts.
func (c *Client) RemoveContacts(ctx context.Context, users ...string) error {
	return c.call(ctx, "contacts.remove", map[string]any{"users": users}, nil)
}

// Device is one of the user's devices connected now.
type Device struct {
	Name        string `json:"device"`      // the token's "dev" claim; "default" without one
	Connections int    `json:"connections"` // its open connections
	Current     bool   `json:"current"`     // the device of this connection
}

// Devices lists the user's devices connected now.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var ack struct {
		Devices []Device `json:"devices"`
	}
	err := c.call(ctx, "devices.list", nil, &ack)
	return ack.Devices, err
}

// TypingTo tells user that this user is typing to them, or with stop, has
// stopped. The server takes one typing frame per connection per 500 ms and
// refuses faster ones with CodeRateLimited.
func (c *Client) TypingTo(ctx context.Context, user string, stop bool) error {
	return c.typing(ctx, map[string]any{"to": user}, stop)
}

// TypingInGroup tells the other members of group that this user is typing
// there, or with stop, has stopped. Rate-limited like TypingTo.
func (c *Client) TypingInGroup(ctx context.Context, group string, stop bool) error {
	return c.typing(ctx, map[string]any{"group": group}, stop)
}

func (c *Client) typing(ctx context.Context, fields map[string]any, stop bool) error {
	if stop {
		fields["stop"] = true
	}
	return c.call(ctx, "typing", fields, nil)
}
