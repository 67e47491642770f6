package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config configures a Gateway. The zero value means "defaults"; each
// default is written on its field and filled in by New.
type Config struct {
	// Listen is the TCP address to serve on. Default ":8080".
	Listen string `yaml:"-"`
	// Node is this gateway's id in the routing directory and on the bus.
	// Default: host name, pid and a random suffix ("host-1234-9f3a1c2e"),
	// unique per process, so gateways started from one config never share
	// an id. Gateways sharing a directory must have distinct ids: a node's
	// routes live as long as its liveness key, and a connection id is
	// unique only within its node. Set it only to a value unique per
	// process (a restarted process should take a new one: its old routes
	// then die with the old id's liveness).
	Node string `yaml:"node" help:"gateway node id in the routing directory, unique per process (default host name, pid and a random suffix)"`
	// EventLoops is the number of gnet event loops. Default: one per CPU.
	EventLoops int `yaml:"event_loops" help:"number of epoll event loops (default: one per CPU)"`
	// ReusePort sets SO_REUSEPORT so several processes can share Listen.
	ReusePort bool `yaml:"reuse_port" help:"set SO_REUSEPORT so several processes share the port (default false)"`
	// MaxConnections caps open connections; more upgrades get HTTP 503.
	// Default 0: no cap beyond the open-file limit.
	MaxConnections int `yaml:"max_connections" help:"cap on open connections (0: none)"`

	// MaxHandshakeBytes bounds the HTTP upgrade request. Default 8192.
	MaxHandshakeBytes int `yaml:"max_handshake_bytes" help:"largest HTTP upgrade request (bytes) (default 8192)"`
	// HandshakeTimeout bounds the time from accept to a complete upgrade
	// request. Default 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout" help:"time allowed from accept to a complete upgrade request (default 10s)"`
	// MaxFrameBytes bounds one frame's payload, on its declared length.
	// Default 65536.
	MaxFrameBytes int `yaml:"max_frame_bytes" help:"largest frame payload (bytes); larger gets close 1009 (default 65536)"`
	// MaxMessageBytes bounds a message, fragments included. Default 131072.
	MaxMessageBytes int `yaml:"max_message_bytes" help:"largest message (bytes, all fragments); larger gets close 1009 (default 131072)"`
	// MaxFragments bounds the frames of one fragmented message. Default 64.
	MaxFragments int `yaml:"max_fragments" help:"most frames in one fragmented message (default 64)"`
	// MessageRate is the sustained messages per second allowed per
	// connection. Default 100.
	MessageRate float64 `yaml:"message_rate" help:"sustained client messages per second per connection (default 100)"`
	// MessageBurst is how many messages a connection may send at once
	// above MessageRate. Default 200.
	MessageBurst int `yaml:"message_burst" help:"burst of client messages allowed above message_rate (default 200)"`
	// MaxOutboundBytes bounds bytes queued to a connection that are not
	// yet written to its socket. Past it the connection is closed with 4000
	// (slow consumer). Default 4194304.
	MaxOutboundBytes int `yaml:"max_outbound_bytes" help:"outbound bytes queued per connection before close 4000 (slow consumer) (default 4194304)"`
	// PingInterval is how long a connection may be silent before the
	// server pings it. Default 30s.
	PingInterval time.Duration `yaml:"ping_interval" help:"silence before the server sends a ping (default 30s)"`
	// IdleTimeout is how long a connection may be silent (no frame, no
	// pong) before it is closed with 4001. Default 75s.
	IdleTimeout time.Duration `yaml:"idle_timeout" help:"silence before the connection is closed with 4001 (default 75s)"`
	// CloseTimeout is how long the server waits for the peer's close frame
	// after sending its own. Default 3s.
	CloseTimeout time.Duration `yaml:"close_timeout" help:"wait for the peer's close frame after sending ours (default 3s)"`
	// AllowedOrigins, when set, is the list of Origin values accepted on
	// upgrade (scheme://host[:port], or "*" for any); others get 403.
	// Requests without an Origin header (non-browser clients) are accepted.
	AllowedOrigins []string `yaml:"allowed_origins" help:"accepted Origin values for browsers (empty: any)"`
	// HubWorkers is the number of goroutines that register routes and read
	// inboxes for syncs and gap fills. Default 16.
	HubWorkers int `yaml:"hub_workers" help:"goroutines that register routes and read inboxes for syncs (default 16)"`
	// SyncPage is how many entries a sync reads from the store at a time.
	// Default 256.
	SyncPage int `yaml:"sync_page" help:"inbox entries read per sync page (default 256)"`
	// MaxDevices is how many devices of one user may be connected at once
	// (a phone and four companions); the next one is refused with
	// too_many_devices and close code 4002. Default 5.
	MaxDevices int `yaml:"max_devices" help:"devices of one user connected at once (default 5)"`
	// TypingInterval is the shortest time between two typing frames of one
	// connection; faster ones are dropped with rate_limited. Default 500ms.
	TypingInterval time.Duration `yaml:"typing_interval" help:"shortest time between two typing frames of a connection (default 500ms)"`
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.Node == "" {
		c.Node = DefaultNode()
	}
	def(&c.MaxHandshakeBytes, 8192)
	defDur(&c.HandshakeTimeout, 10*time.Second)
	def(&c.MaxFrameBytes, 64<<10)
	def(&c.MaxMessageBytes, 128<<10)
	def(&c.MaxFragments, 64)
	if c.MessageRate == 0 {
		c.MessageRate = 100
	}
	def(&c.MessageBurst, 200)
	def(&c.MaxOutboundBytes, 4<<20)
	defDur(&c.PingInterval, 30*time.Second)
	defDur(&c.IdleTimeout, 75*time.Second)
	defDur(&c.CloseTimeout, 3*time.Second)
	def(&c.HubWorkers, 16)
	def(&c.SyncPage, 256)
	def(&c.MaxDevices, 5)
	defDur(&c.TypingInterval, 500*time.Millisecond)
}

// DefaultNode returns a node id unique per process: host name, pid and 32
// random bits ("host-1234-9f3a1c2e"), different at each call: the default
// of Config.Node, for a caller that needs the node id before New. The pid
// alone repeats across containers (often pid 1 on the same host name) and
// across restarts. Safe for concurrent use.
func DefaultNode() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "gateway"
	}
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxFrameBytes < 126 {
		errs = append(errs, fmt.Errorf("max_frame_bytes %d: must be at least 126", c.MaxFrameBytes))
	}
	if c.MaxMessageBytes < c.MaxFrameBytes {
		errs = append(errs, fmt.Errorf("max_message_bytes %d: must be at least max_frame_bytes %d", c.MaxMessageBytes, c.MaxFrameBytes))
	}
	if c.MaxHandshakeBytes < 512 {
		errs = append(errs, fmt.Errorf("max_handshake_bytes %d: must be at least 512", c.MaxHandshakeBytes))
	}
	if c.MessageRate < 0 || c.MessageBurst < 1 {
		errs = append(errs, errors.New("message_rate must be positive and message_burst at least 1"))
	}
	if c.IdleTimeout <= c.PingInterval+sweepEvery {
		// Timeouts are checked once per sweep: with less, a connection
		// could be closed as idle before it was ever pinged.
		errs = append(errs, fmt.Errorf("idle_timeout %v must exceed ping_interval %v by more than %v (connections are swept once a second)",
			c.IdleTimeout, c.PingInterval, sweepEvery))
	}
	if c.MaxOutboundBytes < 2*c.MaxMessageBytes {
		errs = append(errs, fmt.Errorf("max_outbound_bytes %d: must be at least twice max_message_bytes", c.MaxOutboundBytes))
	}
	if c.EventLoops < 0 || c.MaxConnections < 0 || c.HubWorkers < 0 || c.SyncPage < 0 || c.MaxFragments < 0 || c.MaxDevices < 0 {
		errs = append(errs, errors.New("event_loops, max_connections, hub_workers, sync_page and max_fragments must not be negative"))
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !strings.Contains(o, "://") {
			errs = append(errs, fmt.Errorf("allowed_origins %q: want scheme://host[:port] or *", o))
		}
	}
	return errors.Join(errs...)
}
