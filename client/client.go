package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a Switchboard connection that survives disconnects: it keeps an
// outbox of frames awaiting the server's ack and a cursor of the highest
// seq handled, and on every (re)connect it syncs from the cursor and resends
// the outbox.
//
// All methods are safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	lock *os.File // StateDir lock; nil in memory

	mu      sync.Mutex
	ob      *outbox
	empty   chan struct{} // closed when the outbox empties; nil while it is empty
	closed  bool
	running bool
	runDone chan struct{} // closed when the current Run returns

	stop     chan struct{} // closed by Close
	stopOnce sync.Once

	wake chan struct{} // cap 1: the outbox or a sync request needs the writer

	// Under mu too: the connection, the user's own recent messages, and
	// the state the server keeps per connection, restored on each connect.
	sess   *session            // the current connection; nil when not connected
	own    recentOwn           // ids of the user's own recent messages
	active bool                // SetActive's last word
	subs   map[string]struct{} // users Subscribe'd to

	user atomic.Pointer[string] // Config.User, or the token's subject

	cursor    atomic.Uint64 // highest seq handed to the Handler
	cursorMu  sync.Mutex    // serializes cursor saves
	savedSeq  uint64        // cursor value on disk; under cursorMu
	handlerMu sync.Mutex    // one Handler call at a time
}

// New returns a Client for cfg. With cfg.StateDir set, it creates and locks
// the directory and loads the outbox and cursor left by a previous Client;
// messages sent then are resent once Run connects. New does not connect.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:  cfg,
		log:  cfg.Logger,
		stop: make(chan struct{}),
		wake: make(chan struct{}, 1),
		subs: make(map[string]struct{}),
	}
	c.setUser(cfg.Token)
	if cfg.StateDir == "" {
		c.ob = newOutbox(nil, nil)
		return c, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("client: state dir: %w", err)
	}
	lock, err := lockDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	seq, err := loadCursor(cfg.StateDir)
	if err != nil {
		// Starting over is safe: the cursor may lag, never lead.
		c.log.Warn("client: cursor unreadable; syncing from 0", "err", err)
		seq = 0
	}
	obLog, entries, err := openOutboxLog(cfg.StateDir, c.log)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	c.lock = lock
	c.cursor.Store(seq)
	c.savedSeq = seq
	c.ob = newOutbox(obLog, entries)
	if len(entries) > 0 {
		c.empty = make(chan struct{})
		c.log.Info("client: outbox loaded", "pending", len(entries))
	}
	return c, nil
}

// Run connects and keeps the Client connected until ctx is done or Close is
// called, reconnecting with exponential backoff and full jitter. It returns
// nil after Close, ctx's error when ctx is done, an error matching
// ErrUnauthorized when the server rejects a static Token, and one matching
// ErrReplaced when a newer connection of this device took over. Every
// other failure is retried and reported as a StateChange event.
//
// Run may be called again after it returned, but not concurrently
// (ErrRunning), and not after Close (ErrClosed).
func (c *Client) Run(ctx context.Context) (err error) {
	c.mu.Lock()
	select {
	case <-c.stop:
		c.mu.Unlock()
		return ErrClosed
	default:
	}
	if c.running {
		c.mu.Unlock()
		return ErrRunning
	}
	c.running = true
	done := make(chan struct{})
	c.runDone = done
	c.mu.Unlock()
	defer func() {
		c.emit(StateChange{State: StateStopped, Err: err})
		c.mu.Lock()
		c.running = false
		c.runDone = nil
		c.mu.Unlock()
		close(done)
	}()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-c.stop:
			cancel(ErrClosed)
		case <-ctx.Done():
		}
	}()
	stopped := func() error {
		if errors.Is(context.Cause(ctx), ErrClosed) {
			return nil
		}
		return ctx.Err()
	}

	attempt := 0
	for {
		c.emit(StateChange{State: StateConnecting, Attempt: attempt})
		s, err := c.dial(ctx)
		if err == nil {
			c.log.Debug("client: connected", "url", c.cfg.URL)
			c.setSession(s)
			c.emit(StateChange{State: StateConnected})
			err = s.run(ctx)
			c.setSession(nil)
			if s.healthy {
				attempt = 0
			}
		}
		c.flushCursor()
		if ctx.Err() != nil {
			return stopped()
		}
		if errors.Is(err, ErrUnauthorized) && c.cfg.TokenSource == nil || errors.Is(err, ErrReplaced) {
			return err
		}
		delay := backoff(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt)
		attempt++
		c.log.Info("client: disconnected", "err", err, "retry_in", delay)
		c.emit(StateChange{State: StateDisconnected, Err: err, RetryIn: delay})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return stopped()
		case <-t.C:
		}
	}
}

// Close stops Run (closing the connection with 1000), waits for it to
// return, saves the cursor and releases StateDir. Unacked outbox entries
// stay on disk for the next Client. Close must not be called from the
// Handler (it waits for the Handler to return). It is idempotent.
func (c *Client) Close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	c.mu.Lock()
	done := c.runDone
	c.mu.Unlock()
	if done != nil {
		<-done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := c.flushCursor()
	if cerr := c.ob.close(); err == nil {
		err = cerr
	}
	if c.lock != nil {
		if cerr := c.lock.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Send queues a message of body to user to and returns its client id.
// With StateDir set, the message is on disk (fsynced) when Send returns
// nil: it will be sent, and resent after disconnects and restarts, until
// the server acks it (an Ack event with the same client id). Send works
// offline and before Run. It is safe for concurrent use.
func (c *Client) Send(ctx context.Context, to, body string) (clientID string, err error) {
	if to == "" {
		return "", errors.New("client: Send: empty recipient")
	}
	return c.send(ctx, sendFrame{Type: "send", To: to, Body: body})
}

// SendGroup queues a message of body to the members of group (its id, as
// CreateGroup returned it) and returns its client id, like Send: durably,
// offline too, resent with the same id until acked. Every member, this
// user included, gets it as a Message with Group set. A refusal for good
// (not_member, not_found) drops it and is handed to the Handler as a
// *ServerError with its ID. It is safe for concurrent use.
func (c *Client) SendGroup(ctx context.Context, group, body string) (clientID string, err error) {
	if group == "" {
		return "", errors.New("client: SendGroup: empty group")
	}
	return c.send(ctx, sendFrame{Type: "send", Group: group, Body: body})
}

func (c *Client) send(ctx context.Context, f sendFrame) (string, error) {
	f.ID = NewID()
	frame, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("client: send: %w", err)
	}
	if err := c.enqueue(ctx, newSendEntry(f, frame)); err != nil {
		return "", err
	}
	return f.ID, nil
}

// maxReceiptIDs is the largest msg_ids array the server accepts in one
// receipt; longer lists are split.
const maxReceiptIDs = 256

// MarkDelivered tells the senders of msgIDs that they reached this device.
// Receipts are queued in the outbox like messages (durably with StateDir)
// and sent when connected; the server treats repeats as no-ops. Ids of
// this user's own messages that the Client has seen lately (acked, or
// received as Own) are left out: a user sends no receipts to themselves.
// It is safe for concurrent use.
func (c *Client) MarkDelivered(ctx context.Context, msgIDs ...string) error {
	return c.mark(ctx, StatusDelivered, msgIDs)
}

// MarkRead tells the senders of msgIDs that the user has seen them (read
// implies delivered). Queued and filtered like MarkDelivered. It is safe
// for concurrent use.
func (c *Client) MarkRead(ctx context.Context, msgIDs ...string) error {
	return c.mark(ctx, StatusRead, msgIDs)
}

func (c *Client) mark(ctx context.Context, st Status, msgIDs []string) error {
	msgIDs = c.notOwn(msgIDs)
	for len(msgIDs) > 0 {
		n := min(len(msgIDs), maxReceiptIDs)
		id := NewID()
		frame, err := json.Marshal(receiptFrame{Type: "receipt", ID: id, Status: st, MsgIDs: msgIDs[:n]})
		if err != nil {
			return fmt.Errorf("client: receipt: %w", err)
		}
		if err := c.enqueue(ctx, &entry{id: id, frame: frame}); err != nil {
			return err
		}
		msgIDs = msgIDs[n:]
	}
	return nil
}

func (c *Client) enqueue(ctx context.Context, e *entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.ob.len() >= c.cfg.MaxOutbox {
		return ErrOutboxFull
	}
	if err := c.ob.add(e); err != nil {
		return err
	}
	if c.empty == nil {
		c.empty = make(chan struct{})
	}
	c.signal()
	return nil
}

// removeLocked drops the outbox entry id (acked or refused for good).
// Caller holds c.mu, and calls notifyEmpty once the event for the entry has
// been handed to the Handler.
func (c *Client) removeLocked(id string) *entry {
	e, err := c.ob.remove(id)
	if err != nil {
		c.log.Warn("client: outbox", "err", err)
	}
	c.signal() // a slot in the in-flight window is free
	return e
}

// notifyEmpty releases Flush callers if the outbox is empty.
func (c *Client) notifyEmpty() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ob.len() == 0 && c.empty != nil {
		close(c.empty)
		c.empty = nil
	}
}

// Flush waits until the outbox is empty: every message and receipt queued
// so far (and any queued meanwhile) has been acked by the server, or
// refused for good; their Ack events have then been handed to the Handler.
// It returns ctx's error if ctx ends first. Flush does
// not connect: Run must be running for it to return nil. It must not be
// called from the Handler, which would hold up the acks it waits for.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	ch := c.empty
	c.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pending returns the number of outbox entries (messages and receipts) not
// yet acked by the server. An entry leaves the outbox a moment before its
// Ack event reaches the Handler: to wait for the events too, use Flush.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ob.len()
}

// Cursor returns the highest seq handed to the Handler: every inbox entry
// (msg, receipt, group event) up to it has been seen. It is what the next
// sync starts after. It is safe for concurrent use.
func (c *Client) Cursor() uint64 { return c.cursor.Load() }

// User returns this Client's user: Config.User, or else the subject of the
// token last used (read, not verified: the server verifies it). It is ""
// when neither says. It is safe for concurrent use.
func (c *Client) User() string {
	if u := c.user.Load(); u != nil {
		return *u
	}
	return ""
}

// setUser records the user for token, unless Config.User names it.
func (c *Client) setUser(token string) {
	u := c.cfg.User
	if u == "" {
		u = tokenSubject(token)
	}
	if u != "" {
		c.user.Store(&u)
	}
}

// Connected reports whether the Client has a connection now: the state in
// which Request works. It is safe for concurrent use.
func (c *Client) Connected() bool { return c.session() != nil }

// signal wakes the writer without blocking.
func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// emit hands ev to the Handler, one call at a time.
func (c *Client) emit(ev Event) {
	h := c.cfg.Handler
	if h == nil {
		return
	}
	c.handlerMu.Lock()
	defer c.handlerMu.Unlock()
	h(ev)
}

// flushCursor saves the cursor if it moved since the last save.
func (c *Client) flushCursor() error {
	if c.cfg.StateDir == "" {
		return nil
	}
	c.cursorMu.Lock()
	defer c.cursorMu.Unlock()
	seq := c.cursor.Load()
	if seq == c.savedSeq {
		return nil
	}
	if err := saveCursor(c.cfg.StateDir, seq); err != nil {
		c.log.Warn("client: cursor not saved", "err", err)
		return err
	}
	c.savedSeq = seq
	return nil
}

// NewID returns a fresh random client id: 16 bytes from crypto/rand,
// hex-encoded (32 characters).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand docs)
	return hex.EncodeToString(b[:])
}
