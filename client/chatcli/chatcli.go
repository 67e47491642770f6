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

	// AssetsURL is the asset API, for /send and /save (see
	// client.Config.AssetsURL). Default: derived from Server (its host,
	// port 8081).
	AssetsURL string

	// Token is the access token for User. Required.
	Token string

	// Device is the device this chat runs as (the token's "dev" claim): it
	// names the default StateDir, so that one user can chat from several
	// devices on one machine. Default: "" (the server's "default" device).
	Device string

	// StateDir keeps the outbox and cursor across runs. Default:
	// <os.UserConfigDir()>/switchboard/<User>, or <User>@<Device> with a
	// Device.
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

const (
	// quitWait bounds how long /quit and end of input wait for messages
	// still in flight to be acked.
	quitWait = 3 * time.Second

	// requestWait bounds a command's request to the server.
	requestWait = 10 * time.Second

	// activeEvery is how often input tells the server the user is active
	// (which moves their last seen).
	activeEvery = 30 * time.Second
)

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
	u := newUI(opts, out)
	c, err := client.New(client.Config{
		URL:        opts.Server,
		AssetsURL:  opts.AssetsURL,
		Token:      opts.Token,
		User:       opts.User,
		StateDir:   opts.StateDir,
		Handler:    u.handle,
		Logger:     opts.Logger,
		MinBackoff: opts.MinBackoff,
		MaxBackoff: opts.MaxBackoff,
	})
	if err != nil {
		return err
	}
	u.c = c
	defer c.Close()
	defer u.stop() // before Close: its last events are not printed

	u.printf("switchboard chat as %s on %s; /help for help\n", opts.User, opts.Server)
	// Not connected yet: the client remembers it and says so on connect.
	_ = c.SetActive(ctx, true)
	u.lastActive = opts.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	done := make(chan struct{})
	defer close(done)
	return u.loop(ctx, runErr, readLines(in, done))
}

// readLines sends the lines of in on the channel it returns, which is
// closed at the end of in, or at the next line once done is closed.
func readLines(in io.Reader, done <-chan struct{}) <-chan string {
	lines := make(chan string)
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
	return lines
}

// loop handles input and connects until the chat ends. Commands run here,
// never in the client's Handler, which must not wait for the server.
func (u *ui) loop(ctx context.Context, runErr <-chan error, lines <-chan string) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, client.ErrUnauthorized) {
				u.printf("the server rejected the token for %s (401)\n", u.opts.User)
			}
			return err
		case <-u.reload:
			u.loadGroups(ctx)
		case line, ok := <-lines:
			if !ok {
				u.leave(ctx)
				return nil
			}
			if quit := u.line(ctx, line); quit {
				u.leave(ctx)
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
		name := o.User
		if o.Device != "" {
			name += "@" + o.Device
		}
		if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			return fmt.Errorf("chatcli: %q cannot name a state directory; set StateDir", name)
		}
		base, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("chatcli: no state directory: %w", err)
		}
		o.StateDir = filepath.Join(base, "switchboard", name)
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

// conversation is where lines without a "name:" go: a user or a group.
type conversation struct {
	peer  string // a user, or ""
	group string // a group id, or ""
}

// sent is a message this user sent, for the tick lines and /info.
type sent struct {
	msgID       string
	to, group   string // the recipient or the group
	body        string
	status      client.Status // highest receipt shown; "" until one
	otherDevice bool          // sent from another of the user's devices
}

// maxMine bounds the messages /info can name by number.
const maxMine = 100

type ui struct {
	opts Options
	c    *client.Client

	reload     chan struct{} // cap 1: the handler asks loop to learn the groups' names
	lastActive time.Time     // when input last said "active"; loop only

	mu         sync.Mutex // guards out and everything below
	out        io.Writer
	stopped    bool // Run has returned: out is the caller's again
	online     bool
	byClientID map[string]*sent // sent, not yet acked
	byMsgID    map[string]*sent // acked: waiting for receipts
	mine       []*sent          // the latest acked, oldest first, for /info

	conv     conversation
	groups   map[string]string // group id → name
	watched  map[string]bool   // users /who asked about
	presence map[string]string // user → how their presence was last shown
	typing   map[string]bool   // who is shown typing where

	files     []client.Attachment // received files, for /save: number filesBase+1 first
	filesBase int                 // files forgotten (maxFiles)

	unreceipted  []string    // incoming msg ids whose receipts are not queued yet
	receiptTimer *time.Timer // sends them; nil when unreceipted is empty
}

func newUI(opts Options, out io.Writer) *ui {
	return &ui{
		opts:       opts,
		out:        out,
		reload:     make(chan struct{}, 1),
		byClientID: make(map[string]*sent),
		byMsgID:    make(map[string]*sent),
		groups:     make(map[string]string),
		watched:    make(map[string]bool),
		presence:   make(map[string]string),
		typing:     make(map[string]bool),
	}
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
	if line == "" {
		return false
	}
	u.stillActive(ctx)
	if strings.HasPrefix(line, "/") {
		return u.command(ctx, line)
	}
	if to, body, ok := parseLine(line); ok {
		u.sendTo(ctx, conversation{peer: to}, body)
		return false
	}
	u.mu.Lock()
	conv := u.conv
	u.mu.Unlock()
	if conv == (conversation{}) {
		u.printf(`to send, type "name: message" (e.g. "bob: hi"); /help for help` + "\n")
		return false
	}
	u.sendTo(ctx, conv, line)
	return false
}

// stillActive tells the server, at most every activeEvery, that the user
// is using the chat: that keeps them online and their last seen current.
func (u *ui) stillActive(ctx context.Context) {
	now := u.opts.Now()
	if now.Sub(u.lastActive) < activeEvery {
		return
	}
	u.lastActive = now
	ctx, cancel := context.WithTimeout(ctx, requestWait)
	defer cancel()
	if err := u.c.SetActive(ctx, true); err != nil {
		u.opts.Logger.Debug("chatcli: active", "err", err)
	}
}

// sendTo sends body in conv, which becomes the conversation.
func (u *ui) sendTo(ctx context.Context, conv conversation, body string) {
	u.switchTo(ctx, conv)
	var id string
	var err error
	if conv.group != "" {
		id, err = u.c.SendGroup(ctx, conv.group, body)
	} else {
		id, err = u.c.Send(ctx, conv.peer, body)
	}
	if err != nil {
		u.printf("not sent: %v\n", err)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.byClientID[id] = &sent{to: conv.peer, group: conv.group, body: body}
	if !u.online {
		u.writef("  … queued: will send when connected\n")
	}
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

// leave ends the chat: it waits (briefly) for messages and receipts still
// in the outbox to be acked, so that piping lines into the chat sends them
// before it exits, and tells the server the user is no longer active.
// Unacked messages stay in the state directory for the next run.
func (u *ui) leave(ctx context.Context) {
	u.sendReceipts()
	ctx, cancel := context.WithTimeout(ctx, quitWait)
	defer cancel()
	if u.c.Pending() > 0 && u.c.Flush(ctx) != nil {
		if n := u.c.Pending(); n > 0 {
			u.printf("%d unsent, kept for next time\n", n)
		}
	}
	if err := u.c.SetActive(ctx, false); err != nil {
		u.opts.Logger.Debug("chatcli: inactive", "err", err)
	}
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
		select {
		case u.reload <- struct{}{}: // names of groups joined meanwhile
		default:
		}
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
