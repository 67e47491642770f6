package chatcli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard/switchboard/client"
)

// Options configures Run. The zero value of a field means its default.
type Options struct {
	// User is who is chatting: it names the default StateDir and tells
	// this user's own messages (from another device) apart. Required.
	User string

	// Server is the WebSocket endpoint. Default: client.DefaultURL
	// (ws://127.0.0.1:8080/v1/ws).
	Server string

	// Token is the access token for User. Required.
	Token string

	// StateDir keeps the outbox and cursor across runs.
	// Default: <os.UserConfigDir()>/switchboard/<User>.
	StateDir string

	// AutoRead sends a read receipt for every message shown, after the
	// delivered one. Default (nil): true.
	AutoRead *bool

	// Now is the clock for displayed times. Default: time.Now.
	Now func() time.Time

	// Logger receives the client's diagnostics. Default: discarded (the
	// terminal is for the chat).
	Logger *slog.Logger

	// MinBackoff and MaxBackoff bound reconnect delays (see client.Config).
	// Defaults: the client's (250ms and 30s).
	MinBackoff, MaxBackoff time.Duration
}

// quitWait bounds how long /quit and end of input wait for messages still
// in flight to be acked.
const quitWait = 3 * time.Second

const helpText = `Type "name: message" to send, e.g. "bob: hi there".
  ✓ sent (stored on the server)   ✓✓ delivered   ✓✓ read
/help  this help
/quit  leave (end of input, Ctrl-D, works too)
`

// Run chats until in ends, the user types /quit, or ctx is done; all three
// return nil. It returns an error for bad options, an unusable state
// directory, or a token the server rejects. Output goes to out, one line at
// a time; writes to out are serialized.
//
// Run reads in on a goroutine of its own, which ends when in does: give it
// a reader that ends (a closed pipe, os.Stdin at exit).
func Run(ctx context.Context, opts Options, in io.Reader, out io.Writer) error {
	if err := opts.setDefaults(); err != nil {
		return err
	}
	ui := &ui{opts: opts, out: out, byClientID: make(map[string]*sent), byMsgID: make(map[string]*sent)}
	c, err := client.New(client.Config{
		URL:        opts.Server,
		Token:      opts.Token,
		StateDir:   opts.StateDir,
		Handler:    ui.handle,
		Logger:     opts.Logger,
		MinBackoff: opts.MinBackoff,
		MaxBackoff: opts.MaxBackoff,
	})
	if err != nil {
		return err
	}
	ui.c = c
	defer c.Close()
	defer ui.stop() // before Close: its last events are not printed

	ui.printf("switchboard chat as %s on %s; /help for help\n", opts.User, opts.Server)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()

	lines := make(chan string)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, client.ErrUnauthorized) {
				ui.printf("the server rejected the token for %s (401)\n", opts.User)
			}
			return err
		case line, ok := <-lines:
			if !ok {
				ui.drain(ctx)
				return nil
			}
			if quit := ui.line(ctx, line); quit {
				ui.drain(ctx)
				return nil
			}
		}
	}
}

func (o *Options) setDefaults() error {
	if o.User == "" {
		return errors.New("chatcli: a user is required")
	}
	if o.Token == "" {
		return errors.New("chatcli: a token is required")
	}
	if o.Server == "" {
		o.Server = client.DefaultURL
	}
	if o.StateDir == "" {
		if strings.ContainsAny(o.User, `/\`) || o.User == "." || o.User == ".." {
			return fmt.Errorf("chatcli: user %q cannot name a state directory; set StateDir", o.User)
		}
		base, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("chatcli: no state directory: %w", err)
		}
		o.StateDir = filepath.Join(base, "switchboard", o.User)
	}
	if o.AutoRead == nil {
		t := true
		o.AutoRead = &t
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// sent is a message this user sent, for the receipt lines.
type sent struct {
	to, body string
	status   client.Status // highest receipt shown; "" until one
}

type ui struct {
	opts Options
	c    *client.Client

	mu         sync.Mutex // guards out and everything below
	out        io.Writer
	stopped    bool // Run has returned: out is the caller's again
	online     bool
	byClientID map[string]*sent // sent, not yet acked
	byMsgID    map[string]*sent // acked: waiting for receipts

	unreceipted  []string    // incoming msg ids whose receipts are not queued yet
	receiptTimer *time.Timer // sends them; nil when unreceipted is empty
}

func (u *ui) printf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.writef(format, args...)
}

// writef prints unless Run has returned. Caller holds u.mu.
func (u *ui) writef(format string, args ...any) {
	if !u.stopped {
		fmt.Fprintf(u.out, format, args...)
	}
}

// stop silences the ui for good: nothing is written to out once Run has
// returned, whatever the client's goroutines still report.
func (u *ui) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.stopped = true
	if u.receiptTimer != nil {
		u.receiptTimer.Stop()
		u.receiptTimer = nil
	}
}

// line handles one line of input and reports whether it asked to quit.
func (u *ui) line(ctx context.Context, line string) (quit bool) {
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return false
	case line == "/quit" || line == "/exit":
		return true
	case line == "/help":
		u.printf("%s", helpText)
		return false
	case strings.HasPrefix(line, "/"):
		u.printf("unknown command %s; /help for help\n", strings.Fields(line)[0])
		return false
	}
	to, body, ok := parseLine(line)
	if !ok {
		u.printf(`to send, type "name: message" (e.g. "bob: hi"); /help for help` + "\n")
		return false
	}
	id, err := u.c.Send(ctx, to, body)
	if err != nil {
		u.printf("not sent: %v\n", err)
		return false
	}
	u.mu.Lock()
	u.byClientID[id] = &sent{to: to, body: body}
	if !u.online {
		u.writef("  … queued: will send when connected\n")
	}
	u.mu.Unlock()
	return false
}

// parseLine splits "name: message". The name is one word; the message is
// not empty.
func parseLine(line string) (to, body string, ok bool) {
	name, msg, found := strings.Cut(line, ":")
	if !found {
		return "", "", false
	}
	name, msg = strings.TrimSpace(name), strings.TrimSpace(msg)
	if name == "" || msg == "" || strings.IndexFunc(name, unicode.IsSpace) >= 0 {
		return "", "", false
	}
	return name, msg, true
}

// drain waits (briefly) for messages and receipts still in the outbox to
// be acked, so that piping lines into the chat sends them before it exits.
// Unacked ones stay in the state directory for the next run.
func (u *ui) drain(ctx context.Context) {
	u.sendReceipts()
	if u.c.Pending() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, quitWait)
	defer cancel()
	if u.c.Flush(ctx) != nil {
		if n := u.c.Pending(); n > 0 {
			u.printf("%d unsent, kept for next time\n", n)
		}
	}
}

// handle receives the client's events (one at a time).
func (u *ui) handle(ev client.Event) {
	switch e := ev.(type) {
	case client.Message:
		u.message(e)
	case client.Ack:
		u.ack(e)
	case client.Receipt:
		u.receipt(e)
	case *client.ServerError:
		if client.IsRetriable(e) && e.ID != "" {
			return // the client retries it: nothing for the user to do
		}
		u.printf("  server error: %s: %s\n", e.Code, e.Message)
	case client.StateChange:
		u.state(e)
	}
}

func (u *ui) clock(t time.Time) string {
	now := u.opts.Now()
	if t.IsZero() {
		t = now
	}
	return t.In(now.Location()).Format("15:04:05")
}

func (u *ui) message(m client.Message) {
	if m.From == u.opts.User {
		// Sent from another of this user's devices.
		u.printf("[%s] you → %s: %s\n", u.clock(m.TS), m.To, m.Body)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.writef("[%s] %s: %s\n", u.clock(m.TS), m.From, m.Body)
	// Receipts go out in batches: a sync after a day offline brings
	// hundreds of messages, and one receipt each would trip the server's
	// rate limit.
	u.unreceipted = append(u.unreceipted, m.MsgID)
	if len(u.unreceipted) == 1 {
		u.receiptTimer = time.AfterFunc(receiptDelay, u.sendReceipts)
	}
}

// receiptDelay is how long receipts for incoming messages wait to be sent
// together.
const receiptDelay = 20 * time.Millisecond

// sendReceipts sends the delivered (and, with AutoRead, read) receipts for
// the messages shown since the last call.
func (u *ui) sendReceipts() {
	u.mu.Lock()
	ids := u.unreceipted
	u.unreceipted = nil
	if u.receiptTimer != nil {
		u.receiptTimer.Stop()
		u.receiptTimer = nil
	}
	u.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx := context.Background()
	err := u.c.MarkDelivered(ctx, ids...)
	if err == nil && *u.opts.AutoRead {
		err = u.c.MarkRead(ctx, ids...)
	}
	if err != nil {
		u.printf("  receipts not sent: %v\n", err)
	}
}

func (u *ui) ack(a client.Ack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.byClientID[a.ClientID]
	delete(u.byClientID, a.ClientID)
	if s == nil {
		s = &sent{to: a.To, body: a.Body} // sent in an earlier run
	}
	u.byMsgID[a.MsgID] = s
	u.writef("[%s] you → %s: %s  ✓\n", u.clock(time.Time{}), s.to, s.body)
}

func (u *ui) receipt(r client.Receipt) {
	u.mu.Lock()
	defer u.mu.Unlock()
	earlier := 0
	for _, id := range r.MsgIDs {
		s := u.byMsgID[id]
		if s == nil {
			earlier++ // sent before this run: nothing to show but a count
			continue
		}
		if rank(r.Status) <= rank(s.status) {
			continue // read already shown; a late delivered adds nothing
		}
		s.status = r.Status
		u.writef("  ✓✓ %s (msg to %s: %q)\n", r.Status, s.to, abbrev(s.body, 40))
		if r.Status == client.StatusRead {
			delete(u.byMsgID, id) // nothing more will come
		}
	}
	switch {
	case earlier == 1:
		u.writef("  ✓✓ %s by %s (an earlier message)\n", r.Status, r.By)
	case earlier > 1:
		u.writef("  ✓✓ %s by %s (%d earlier messages)\n", r.Status, r.By, earlier)
	}
}

func rank(s client.Status) int {
	switch s {
	case client.StatusDelivered:
		return 1
	case client.StatusRead:
		return 2
	}
	return 0
}

func abbrev(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func (u *ui) state(s client.StateChange) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch s.State {
	case client.StateConnecting:
		if s.Attempt == 0 {
			u.writef("connecting…\n")
		}
	case client.StateConnected:
		u.online = true
		u.writef("connected\n")
	case client.StateDisconnected:
		retry := "retrying now"
		if s.RetryIn >= 100*time.Millisecond {
			retry = "retrying in " + s.RetryIn.Round(100*time.Millisecond).String()
		}
		switch {
		case u.online:
			u.writef("disconnected: %s, %s\n", reason(s.Err), retry)
		case s.RetryIn >= time.Second:
			// Quick first retries of a failed connect are not worth a line.
			u.writef("cannot connect: %s, %s\n", reason(s.Err), retry)
		}
		u.online = false
	case client.StateStopped:
		u.online = false
	}
}

// reason is a short human reading of why a connection ended.
func reason(err error) string {
	var ce *client.CloseError
	var he *client.HandshakeError
	switch {
	case err == nil:
		return "unknown reason"
	case errors.As(err, &ce):
		if ce.Reason != "" {
			return fmt.Sprintf("%s (%s)", ce.Code, ce.Reason)
		}
		return ce.Code.String()
	case errors.Is(err, client.ErrUnauthorized):
		return "token rejected (401)"
	case errors.As(err, &he):
		return fmt.Sprintf("server answered HTTP %d", he.StatusCode)
	}
	return strings.TrimPrefix(err.Error(), "client: ")
}
