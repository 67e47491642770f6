package loadtest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is what every scenario shares: the server, how tokens are made
// and where connections come from. The zero value means "defaults"; each
// default is written on its field and filled in by Run.
type Config struct {
	// URL is the server's WebSocket endpoint, or several gateways of one
	// distributed deployment separated by commas. Connection i goes to
	// gateway i mod n; chat puts pair i's sender on gateway i mod n and its
	// recipient on gateway (i+1) mod n, so with two or more every message
	// crosses gateways. Default "ws://127.0.0.1:8080/v1/ws".
	URL string `json:"url"`
	// DataDir is the server's data directory: tokens are signed with its
	// secret.key. Default "./data".
	DataDir string `json:"data_dir"`
	// SecretFile, when set, is the secret file used instead of
	// DataDir/secret.key.
	SecretFile string `json:"secret_file,omitempty"`
	// SourceIPs lists local addresses to bind connections to, round robin:
	// addresses and ranges separated by commas, e.g.
	// "127.0.0.2-127.0.0.50". Each address gives about 28,000 ephemeral
	// ports towards one server address. Default: none, the kernel picks.
	SourceIPs string `json:"source_ips,omitempty"`
	// ServerPID, when set, is the server's process id: RSS and CPU are read
	// from /proc/PID. Default 0: from MetricsURL.
	ServerPID int `json:"server_pid,omitempty"`
	// ServerPIDs are more server processes (several gateways sharing one
	// port with SO_REUSEPORT): RSS and CPU are the sums over ServerPID and
	// these.
	ServerPIDs []int `json:"server_pids,omitempty"`
	// MetricsURL is the server's Prometheus endpoint. Default: http:// and
	// the (first) URL's host, path /metrics.
	MetricsURL string `json:"metrics_url,omitempty"`
	// DialTimeout bounds one connection's TCP connect and upgrade, and its
	// first sync. Default 10s.
	DialTimeout time.Duration `json:"dial_timeout"`
	// Concurrency is how many connections are opened at once by idle and
	// by chat's setup (connect has its own). Default 64.
	Concurrency int `json:"concurrency"`
	// UserPrefix starts every user id, followed by a random run id so that
	// runs never share inboxes. Default "lt".
	UserPrefix string `json:"user_prefix"`
	// WorkerCommand is the argv that starts an idle worker process, one
	// that calls RunIdleWorker on its stdin and stdout. Needed only when
	// idle spreads over several processes.
	WorkerCommand []string `json:"-"`
	// ChatWorkerCommand is the argv that starts a chat worker process, one
	// that calls RunChatWorker on its stdin and stdout. Needed only when
	// chat (or day) runs over several processes (Chat.Processes).
	ChatWorkerCommand []string `json:"-"`
	// Log receives progress lines. Default: discarded.
	Log *slog.Logger `json:"-"`
	// Status receives the live status line (Meter). Default: none.
	Status io.Writer `json:"-"`
}

func (c *Config) setDefaults() {
	if c.URL == "" {
		c.URL = "ws://127.0.0.1:8080/v1/ws"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.MetricsURL == "" {
		if u, err := url.Parse(c.urls()[0]); err == nil {
			scheme := "http"
			if u.Scheme == "wss" {
				scheme = "https"
			}
			c.MetricsURL = scheme + "://" + u.Host + "/metrics"
		}
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.UserPrefix == "" {
		c.UserPrefix = "lt"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	var errs []error
	for _, s := range c.urls() {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("url: %w", err))
		case u.Scheme != "ws":
			errs = append(errs, fmt.Errorf("url %q: want ws://host:port/path (wss is not supported)", s))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("url %q: no host", s))
		}
	}
	if _, err := parseIPs(c.SourceIPs); err != nil {
		errs = append(errs, err)
	}
	if c.DialTimeout < 0 || c.Concurrency < 0 || c.ServerPID < 0 || slices.ContainsFunc(c.ServerPIDs, func(p int) bool { return p <= 0 }) {
		errs = append(errs, errors.New("dial timeout, concurrency and server pid must not be negative"))
	}
	if len(c.UserPrefix) > 64 {
		errs = append(errs, errors.New("user prefix: at most 64 bytes"))
	}
	return errors.Join(errs...)
}

// urls splits URL at its commas: one endpoint per gateway (at least one,
// perhaps empty).
func (c *Config) urls() []string {
	us := strings.Split(c.URL, ",")
	for i := range us {
		us[i] = strings.TrimSpace(us[i])
	}
	return us
}

// parseIPs parses "a,b-c,..." where b-c is an IPv4 range.
func parseIPs(s string) ([]net.IP, error) {
	var ips []net.IP
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo))
		if a == nil {
			return nil, fmt.Errorf("source ips: bad address %q", lo)
		}
		if !isRange {
			ips = append(ips, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi))
		a4, b4 := a.To4(), b.To4()
		if a4 == nil || b4 == nil {
			return nil, fmt.Errorf("source ips: range %q: want two IPv4 addresses", part)
		}
		from, to := ip4(a4), ip4(b4)
		if to < from || to-from >= 1<<16 {
			return nil, fmt.Errorf("source ips: range %q: empty or more than 65536 addresses", part)
		}
		for v := from; v <= to; v++ {
			ips = append(ips, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)))
		}
	}
	return ips, nil
}

func ip4(b net.IP) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
