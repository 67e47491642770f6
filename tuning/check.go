package tuning

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Defaults of Config. The memory figures were measured on the project's
// 2-core, 24 GiB box (docs/tuning.md and docs/benchmarks.md say how).
const (
	// DefaultKernelBytesPerConn is the kernel's memory for one idle TCP
	// socket: the socket (TCP slab object, 2,368 bytes), its inode (832),
	// file, dentry and epoll item; 3.8 KiB.
	DefaultKernelBytesPerConn = 3.8 * 1024
	// DefaultGatewayBytesPerConn is the gateway's RSS per idle
	// authenticated connection: 1.86 KiB, measured at 499,129 connections
	// over 32 processes (1.279 KiB at 15,000 in one).
	DefaultGatewayBytesPerConn = 1.86 * 1024
	// DefaultReservedFiles is the open files a gateway process keeps for
	// other things than connections: its listeners, the store's files,
	// epoll and event descriptors, logs.
	DefaultReservedFiles = 1000
	// DefaultPingInterval is the gateway's default gateway.ping_interval.
	DefaultPingInterval = 30 * time.Second
)

// manyConns is the count from which the queue settings are sized for a
// reconnect storm rather than Linux's defaults.
const manyConns = 100_000

// Config says what to check. The zero value is not valid: Conns is
// required; every other field's zero value means its default.
type Config struct {
	// Conns is the number of connections the box should hold. Required.
	Conns int64
	// Processes is the number of gateway processes sharing the port
	// (gateway.reuse_port) that hold them, Conns/Processes each. Default 1.
	Processes int
	// Root is the directory under which /proc is read. Default "/".
	Root string
	// Files is the open-file limit of each gateway process. Default: this
	// process's (ReadFileLimit).
	Files *FileLimit
	// PageSize is the unit of tcp_mem. Default: this machine's page size.
	PageSize int64
	// KernelBytesPerConn is the kernel's memory per idle socket. Default
	// DefaultKernelBytesPerConn.
	KernelBytesPerConn float64
	// GatewayBytesPerConn is the gateway's RSS per idle connection.
	// Default DefaultGatewayBytesPerConn.
	GatewayBytesPerConn float64
	// ReservedFiles is the open files each process needs besides its
	// connections. Default DefaultReservedFiles.
	ReservedFiles int64
	// PingInterval is the gateway's gateway.ping_interval. Default
	// DefaultPingInterval.
	PingInterval time.Duration
}

// ErrConfig is returned by Check for a Config that cannot be checked.
var ErrConfig = errors.New("tuning: bad config")

func (c *Config) setDefaults() {
	if c.Processes == 0 {
		c.Processes = 1
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if c.PageSize == 0 {
		c.PageSize = int64(os.Getpagesize())
	}
	if c.KernelBytesPerConn == 0 {
		c.KernelBytesPerConn = DefaultKernelBytesPerConn
	}
	if c.GatewayBytesPerConn == 0 {
		c.GatewayBytesPerConn = DefaultGatewayBytesPerConn
	}
	if c.ReservedFiles == 0 {
		c.ReservedFiles = DefaultReservedFiles
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
}

func (c *Config) validate() error {
	switch {
	case c.Conns < 1:
		return fmt.Errorf("%w: connections %d: want at least 1", ErrConfig, c.Conns)
	case c.Processes < 1:
		return fmt.Errorf("%w: processes %d: want at least 1", ErrConfig, c.Processes)
	case c.KernelBytesPerConn < 0 || c.GatewayBytesPerConn < 0 || c.ReservedFiles < 0:
		return fmt.Errorf("%w: per-connection figures and reserved files must not be negative", ErrConfig)
	}
	return nil
}

// Status is a setting's verdict for the connections checked.
type Status string

const (
	// OK: the setting allows the connections.
	OK Status = "ok"
	// Low: below what is advised for the connections, which are still
	// reachable: a reconnect storm is slower, a burst of traffic hits
	// memory pressure, or a limit waits for a rule that is not there yet.
	Low Status = "low"
	// Limit: the setting caps the connections below the count checked;
	// the count cannot be reached until it changes.
	Limit Status = "LIMIT"
	// Info: the setting does not bound a gateway's connections; it is
	// shown because it bounds load generators and proxies, or is often
	// thought to.
	Info Status = "info"
	// Unknown: the setting could not be read.
	Unknown Status = "unknown"
)

// Scope says what a setting's Allows counts.
type Scope string

const (
	// PerProcess: connections one gateway process may hold.
	PerProcess Scope = "process"
	// PerBox: connections all processes on the box may hold together.
	PerBox Scope = "box"
)

// Setting is one row of a Report.
type Setting struct {
	// Name is the sysctl key (net.core.somaxconn) or a description
	// (open files, hard).
	Name string `json:"name"`
	// Current is the value in force, as the kernel prints it.
	Current string `json:"current"`
	// Needed is the value the connections need or are advised.
	Needed string `json:"needed"`
	Status Status `json:"status"`
	// Allows is how many connections the current value allows, in Scope;
	// 0 when the setting does not cap the count.
	Allows int64 `json:"allows,omitempty"`
	Scope  Scope `json:"scope,omitempty"`
	// Why says what the setting does and why it matters here; How, how to
	// change it.
	Why string `json:"why"`
	How string `json:"how,omitempty"`

	// key is the row's sysctl key, if it has one that is there to read;
	// sysctl is the key to write in a sysctl.d file and value its value,
	// when the current value is below the needed one.
	key, sysctl, value string
}

// Memory is the arithmetic of the memory that Conns idle connections take.
type Memory struct {
	KernelBytesPerConn  float64 `json:"kernel_bytes_per_conn"`
	GatewayBytesPerConn float64 `json:"gateway_bytes_per_conn"`
	KernelBytes         int64   `json:"kernel_bytes"`
	GatewayBytes        int64   `json:"gateway_bytes"`
	TotalBytes          int64   `json:"total_bytes"`
	// MemTotalBytes is /proc/meminfo's MemTotal; 0 if unknown.
	MemTotalBytes int64 `json:"mem_total_bytes"`
}

// Report is the result of Check.
type Report struct {
	Conns     int64 `json:"conns"`
	Processes int   `json:"processes"`
	// FilesPerProcess is the open files each process needs: its share of
	// the connections plus the reserved files.
	FilesPerProcess int64     `json:"files_per_process"`
	ReservedFiles   int64     `json:"reserved_files"`
	FileLimit       FileLimit `json:"file_limit"`
	// ProcessesNeeded is how many processes the current hard open-file
	// limit needs for Conns (0 if the limit is unknown or leaves no room).
	ProcessesNeeded int64     `json:"processes_needed"`
	Memory          Memory    `json:"memory"`
	Settings        []Setting `json:"settings"`
	// PerProcess and PerBox are the connections the current settings
	// allow one process and the whole box (0: not bounded by anything
	// read); Capacity is the lesser of Processes*PerProcess and PerBox.
	PerProcess int64 `json:"per_process_capacity,omitempty"`
	PerBox     int64 `json:"per_box_capacity,omitempty"`
	Capacity   int64 `json:"capacity,omitempty"`
	// PerProcessBy and PerBoxBy name the settings that set PerProcess and
	// PerBox.
	PerProcessBy string `json:"per_process_capacity_by,omitempty"`
	PerBoxBy     string `json:"per_box_capacity_by,omitempty"`
	// Reachable is false when a setting's status is Limit; StoppedBy
	// names those settings, the tightest first.
	Reachable bool     `json:"reachable"`
	StoppedBy []string `json:"stopped_by,omitempty"`
}

// Check reads the limits of the box under cfg.Root and this process's
// open-file limit (or cfg.Files) and reports, for each setting that
// bounds connections, whether cfg.Conns connections fit. It changes
// nothing. A setting that cannot be read is reported as Unknown, not as
// an error. Safe for concurrent use.
func Check(cfg Config) (*Report, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Files == nil {
		fl, err := ReadFileLimit()
		if err != nil {
			return nil, fmt.Errorf("tuning: open-file limit: %w", err)
		}
		cfg.Files = &fl
	}
	c := &checker{cfg: cfg, proc: procFS{cfg.Root}}
	c.perProcess = ceilDiv(cfg.Conns, int64(cfg.Processes))
	c.files = c.perProcess + cfg.ReservedFiles
	r := &Report{
		Conns:           cfg.Conns,
		Processes:       cfg.Processes,
		FilesPerProcess: c.files,
		ReservedFiles:   cfg.ReservedFiles,
		FileLimit:       *cfg.Files,
	}
	if room := int64(cfg.Files.Hard) - cfg.ReservedFiles; room > 0 {
		r.ProcessesNeeded = ceilDiv(cfg.Conns, room)
	}
	r.Memory = c.memory()
	r.Settings = []Setting{
		c.softFiles(),
		c.hardFiles(r.ProcessesNeeded),
		c.nrOpen(),
		c.fileMax(),
		c.memorySetting(r.Memory),
		c.conntrack(),
		c.backlog("net.core.somaxconn", 4096, 65535,
			"the accept queue: the gateway listens with this backlog (gnet reads it); while it is full, new "+
				"connections' SYNs are dropped and clients retry after 1 s, 3 s, 7 s, …, so a reconnect storm "+
				"(every client of a restarted gateway at once) takes longer"),
		c.backlog("net.ipv4.tcp_max_syn_backlog", 2048, 65535,
			"half-open connections (SYN received, handshake not finished); past it the kernel answers with SYN "+
				"cookies (net.ipv4.tcp_syncookies) or drops SYNs, which slows a reconnect storm"),
		c.backlog("net.core.netdev_max_backlog", 1000, 16384,
			"packets queued per CPU between the network card and the TCP stack; a burst larger than this "+
				"(pings or reconnects of many clients at once) is dropped and retransmitted"),
		c.tcpMem(),
		c.tcpBuf("net.ipv4.tcp_rmem", "receive"),
		c.tcpBuf("net.ipv4.tcp_wmem", "send"),
		c.portRange(),
		c.twReuse(),
		c.finTimeout(),
		c.twBuckets(),
		c.keepalive(),
	}
	r.summarize()
	return r, nil
}

// summarize fills in the capacities and the verdict from the settings.
func (r *Report) summarize() {
	for _, s := range r.Settings {
		if s.Allows <= 0 { // does not cap the count, or could not be read
			continue
		}
		p, by := &r.PerBox, &r.PerBoxBy
		if s.Scope == PerProcess {
			p, by = &r.PerProcess, &r.PerProcessBy
		}
		if *p == 0 || s.Allows < *p {
			*p, *by = s.Allows, s.Name
		}
	}
	switch {
	case r.PerProcess > 0 && r.PerBox > 0:
		r.Capacity = min(int64(r.Processes)*r.PerProcess, r.PerBox)
	case r.PerProcess > 0:
		r.Capacity = int64(r.Processes) * r.PerProcess
	default:
		r.Capacity = r.PerBox
	}
	var stops []Setting
	for _, s := range r.Settings {
		if s.Status == Limit {
			stops = append(stops, s)
		}
	}
	// The tightest first: compare what each allows the whole box.
	boxAllows := func(s Setting) int64 {
		if s.Scope == PerProcess {
			return s.Allows * int64(r.Processes)
		}
		return s.Allows
	}
	slices.SortStableFunc(stops, func(a, b Setting) int { return cmp.Compare(boxAllows(a), boxAllows(b)) })
	for _, s := range stops {
		r.StoppedBy = append(r.StoppedBy, s.Name)
	}
	r.Reachable = len(stops) == 0
}
