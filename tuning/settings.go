package tuning

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// checker computes the rows of one Check.
type checker struct {
	cfg        Config
	proc       procFS
	perProcess int64 // connections per process
	files      int64 // open files per process
	memTotal   int64 // bytes; 0 if unknown
	memErr     error // why memTotal is unknown
}

func unknown(name string, err error, why string) Setting {
	return Setting{Name: name, Current: "unknown", Needed: "", Status: Unknown,
		Why: why, How: fmt.Sprintf("could not read it: %v", err)}
}

func (c *checker) softFiles() Setting {
	fl := c.cfg.Files
	s := Setting{
		Name:    "open-file soft limit",
		Current: grouped(int64(fl.Soft)),
		Needed:  grouped(c.files),
		Status:  OK,
		Why: fmt.Sprintf("RLIMIT_NOFILE in force. Every socket is an open file: a process needs its %s "+
			"connections plus %s (listeners, store, logs). Any process may raise it to the hard limit; "+
			"the gateway does at start", grouped(c.perProcess), grouped(c.cfg.ReservedFiles)),
	}
	switch {
	case int64(fl.Soft) >= c.files:
	case int64(fl.Hard) >= c.files:
		s.How = "nothing to do for the gateway; for other programs, `ulimit -n " + fmt.Sprint(c.files) + "` before starting them"
	default:
		s.Status = Low
		s.How = "bounded by the hard limit (next row)"
	}
	return s
}

func (c *checker) hardFiles(processesNeeded int64) Setting {
	fl := c.cfg.Files
	s := Setting{
		Name:    "open-file hard limit",
		Current: grouped(int64(fl.Hard)),
		Needed:  grouped(c.files),
		Status:  OK,
		Allows:  max(int64(fl.Hard)-c.cfg.ReservedFiles, 0),
		Scope:   PerProcess,
		Why: "the ceiling of the soft limit, set by whoever starts the process (systemd's LimitNOFILE=, " +
			"pam_limits for logins, a container runtime); raising it needs CAP_SYS_RESOURCE",
	}
	if int64(fl.Hard) >= c.files {
		return s
	}
	s.Status = Limit
	how := fmt.Sprintf("LimitNOFILE=%d in a systemd drop-in, or `USER hard nofile %d` in limits.d (tune apply writes both)", c.files, c.files)
	if ok, err := c.proc.canRaiseHard(); err == nil && !ok {
		how = "this process lacks CAP_SYS_RESOURCE (a container or sandbox): neither it nor its children can raise it. " +
			"Where it starts the gateway: " + how
	}
	if processesNeeded > 0 {
		how += fmt.Sprintf(". Or run %d gateway processes with gateway.reuse_port: true (tune check --processes %d)",
			processesNeeded, processesNeeded)
	}
	s.How = how
	return s
}

func (c *checker) nrOpen() Setting {
	const key = "fs.nr_open"
	why := "the most any process's hard open-file limit may be set to, root included"
	v, err := c.proc.sysctl(key, 1)
	if err != nil {
		return unknown(key, err, why)
	}
	s := Setting{Name: key, key: key, Current: grouped(v[0]), Needed: grouped(c.files), Status: OK,
		Allows: max(v[0]-c.cfg.ReservedFiles, 0), Scope: PerProcess, Why: why}
	if v[0] < c.files {
		s.Status = Limit
		s.How = c.sysctlHow(&s, key, fmt.Sprint(c.files)) + " (before raising the hard limit)"
	}
	return s
}

func (c *checker) fileMax() Setting {
	const key = "fs.file-max"
	why := "open files of all processes together; the box's sockets all count"
	v, err := c.proc.sysctl(key, 1)
	if err != nil {
		return unknown(key, err, why)
	}
	// fs/file-nr: allocated, 0, max. Files already open count against it.
	var inUse int64
	if nr, err := c.proc.sysctl("fs.file-nr", 3); err == nil {
		inUse = nr[0]
		why += fmt.Sprintf(" (%s open now, fs.file-nr)", grouped(inUse))
	}
	others := inUse + int64(c.cfg.Processes)*c.cfg.ReservedFiles
	needed := c.cfg.Conns + others
	s := Setting{Name: key, key: key, Current: grouped(v[0]), Needed: grouped(needed), Status: OK,
		Allows: max(v[0]-others, 0), Scope: PerBox, Why: why}
	if v[0] < needed {
		s.Status = Limit
		s.How = c.sysctlHow(&s, key, fmt.Sprint(needed))
	}
	return s
}

// memory is the arithmetic of the connections' memory; it reads MemTotal.
func (c *checker) memory() Memory {
	m := Memory{
		KernelBytesPerConn:  c.cfg.KernelBytesPerConn,
		GatewayBytesPerConn: c.cfg.GatewayBytesPerConn,
		KernelBytes:         int64(float64(c.cfg.Conns) * c.cfg.KernelBytesPerConn),
		GatewayBytes:        int64(float64(c.cfg.Conns) * c.cfg.GatewayBytesPerConn),
	}
	m.TotalBytes = m.KernelBytes + m.GatewayBytes
	c.memTotal, c.memErr = c.proc.memTotal()
	m.MemTotalBytes = c.memTotal
	return m
}

func (c *checker) memorySetting(m Memory) Setting {
	perConn := m.KernelBytesPerConn + m.GatewayBytesPerConn
	why := fmt.Sprintf("idle connections: kernel %.1f KiB per socket + gateway %.3f KiB per connection = %.2f KiB; "+
		"socket buffers for queued data come on top (net.ipv4.tcp_mem)",
		m.KernelBytesPerConn/1024, m.GatewayBytesPerConn/1024, perConn/1024)
	if c.memErr != nil {
		return unknown("memory (MemTotal)", c.memErr, why)
	}
	s := Setting{Name: "memory (MemTotal)", Current: size(m.MemTotalBytes),
		Needed: fmt.Sprintf("%s (%.0f%%)", size(m.TotalBytes), 100*float64(m.TotalBytes)/float64(m.MemTotalBytes)),
		Status: OK, Scope: PerBox, Why: why}
	if perConn > 0 {
		s.Allows = int64(float64(m.MemTotalBytes) / perConn)
	}
	if m.TotalBytes > m.MemTotalBytes {
		s.Status = Limit
		s.How = "more memory, or fewer connections per box"
	}
	return s
}

func (c *checker) conntrack() Setting {
	const key = "net.netfilter.nf_conntrack_max"
	// Each tracked connection is one entry, and it stays for a while after
	// the close (TIME_WAIT, 120 s): a quarter more leaves room for churn.
	needed := c.cfg.Conns + c.cfg.Conns/4
	why := "connection tracking (firewall state, NAT): one entry per connection; when the table is full new " +
		"connections' packets are dropped (\"nf_conntrack: table full\" in the kernel log)"
	v, err := c.proc.sysctl(key, 1)
	if errors.Is(err, os.ErrNotExist) {
		return Setting{Name: key, Current: "not loaded", Needed: "-", Status: OK,
			Why: why + "; the module is not loaded here, so nothing is tracked"}
	}
	if err != nil {
		return unknown(key, err, why)
	}
	s := Setting{Name: key, key: key, Current: grouped(v[0]), Needed: grouped(needed), Status: OK,
		Allows: v[0], Scope: PerBox, Why: why}
	tracked := int64(-1)
	if n, err := c.proc.sysctl("net.netfilter.nf_conntrack_count", 1); err == nil {
		tracked = n[0]
	}
	if tracked == 0 {
		// No rule uses conntrack: the module is loaded but the kernel
		// tracks nothing, so the table bounds nothing yet.
		s.Allows = 0
		s.Why += "; loaded but tracking nothing now (nf_conntrack_count 0: no firewall or NAT rule uses it); " +
			"it becomes a limit as soon as one does"
	}
	switch {
	case v[0] >= needed:
	case v[0] >= c.cfg.Conns || tracked == 0:
		s.Status = Low
	default:
		s.Status = Limit
	}
	if s.Status != OK {
		s.How = c.sysctlHow(&s, key, fmt.Sprint(needed)) +
			fmt.Sprintf(", and the hash table: echo %d > /sys/module/nf_conntrack/parameters/hashsize", max(needed/4, 1))
	}
	return s
}

// backlog is a queue setting: def up to manyConns connections, big above.
func (c *checker) backlog(key string, def, big int64, why string) Setting {
	v, err := c.proc.sysctl(key, 1)
	if err != nil {
		return unknown(key, err, why)
	}
	needed := def
	if c.cfg.Conns > manyConns {
		needed = big
	}
	s := Setting{Name: key, key: key, Current: grouped(v[0]), Needed: grouped(needed), Status: OK, Why: why}
	if v[0] < needed {
		s.Status = Low
		s.How = c.sysctlHow(&s, key, fmt.Sprint(needed))
	}
	return s
}

func (c *checker) tcpMem() Setting {
	const key = "net.ipv4.tcp_mem"
	page := c.cfg.PageSize
	why := fmt.Sprintf("pages (%d bytes) of socket buffers of all TCP sockets: min, pressure, max. Idle sockets hold none; "+
		"sized here for one page of queued data per connection on average below pressure, two at most. Under "+
		"pressure the kernel shrinks buffers (slower), at max it drops data and resets connections", page)
	v, err := c.proc.sysctl(key, 3)
	if err != nil {
		return unknown(key, err, why)
	}
	pressure, most := c.cfg.Conns, 2*c.cfg.Conns
	if c.memTotal > 0 {
		// Never advise buffers beyond half of the memory.
		half := c.memTotal / 2 / page
		pressure, most = min(pressure, half), min(most, half)
	}
	pressure, most = max(pressure, v[1]), max(most, v[2])
	cur := fmt.Sprintf("%d %d %d", v[0], v[1], v[2])
	s := Setting{Name: key, key: key, Current: cur, Needed: fmt.Sprintf("%d %d %d", v[0], pressure, most), Status: OK,
		Why: why + fmt.Sprintf(" (now: pressure at %s, max %s)", size(v[1]*page), size(v[2]*page))}
	if pressure > v[1] || most > v[2] {
		s.Status = Low
		s.How = c.sysctlHow(&s, key, s.Needed)
	}
	return s
}

func (c *checker) tcpBuf(key, dir string) Setting {
	why := fmt.Sprintf("per-socket %s buffer: min, default, max bytes. Allocated only for queued data, so idle "+
		"connections cost nothing here; the global bound is tcp_mem", dir)
	v, err := c.proc.sysctl(key, 3)
	if err != nil {
		return unknown(key, err, why)
	}
	why += fmt.Sprintf(". Were every connection to fill its default buffer: %s", size(c.cfg.Conns*v[1]))
	return Setting{Name: key, key: key, Current: fmt.Sprintf("%d %d %d", v[0], v[1], v[2]), Needed: "-", Status: Info, Why: why}
}

func (c *checker) portRange() Setting {
	const key = "net.ipv4.ip_local_port_range"
	why := "ports a client picks for its end of a connection. A TCP connection is identified by its 4-tuple " +
		"(source address and port, destination address and port): a server accepting on one port may hold " +
		"any number, but a load generator or proxy can open only as many as this range has ports to one " +
		"gateway ip:port from one source address"
	v, err := c.proc.sysctl(key, 2)
	if err != nil {
		return unknown(key, err, why)
	}
	ports := v[1] - v[0] + 1
	if ports < 1 {
		return unknown(key, fmt.Errorf("range %d %d is empty", v[0], v[1]), why)
	}
	addrs := ceilDiv(c.cfg.Conns, ports)
	return Setting{Name: key, key: key, Current: fmt.Sprintf("%d %d", v[0], v[1]),
		Needed: fmt.Sprintf("any; clients: %s", plural(addrs, "address", "addresses")), Status: Info, Why: why + fmt.Sprintf(
			" (%s here); %s connections from one client box need %s",
			grouped(ports), grouped(c.cfg.Conns), plural(addrs, "source address", "source addresses")),
		How: "load generators: spread over source addresses (switchboard loadtest --source-ips 127.0.0.2-127.0.0.50); " +
			"proxies: several source addresses or backend ip:ports; or widen the range (10240 65535)"}
}

func (c *checker) twReuse() Setting {
	const key = "net.ipv4.tcp_tw_reuse"
	why := "lets a new outgoing connection take the port of one in TIME_WAIT (0 no, 1 yes, 2 loopback only). " +
		"Only the side that opens connections uses it: load generators and proxies, not the gateway"
	v, err := c.proc.sysctl(key, 1)
	if err != nil {
		return unknown(key, err, why)
	}
	return Setting{Name: key, key: key, Current: fmt.Sprint(v[0]), Needed: "1 on clients", Status: Info, Why: why}
}

func (c *checker) finTimeout() Setting {
	const key = "net.ipv4.tcp_fin_timeout"
	why := "seconds an orphaned connection waits in FIN_WAIT_2 for the peer's FIN; not the TIME_WAIT time, " +
		"which is fixed at 60 s. Matters only when many clients vanish during closes"
	v, err := c.proc.sysctl(key, 1)
	if err != nil {
		return unknown(key, err, why)
	}
	return Setting{Name: key, key: key, Current: fmt.Sprint(v[0]), Needed: "-", Status: Info, Why: why}
}

func (c *checker) twBuckets() Setting {
	const key = "net.ipv4.tcp_max_tw_buckets"
	why := "sockets in TIME_WAIT, kept 60 s by the side that closed first: the gateway, for all its " +
		"connections, when it drains. They hold no file and little memory; past this cap the kernel frees " +
		"them at once and logs \"time wait bucket table overflow\": harmless for a server"
	v, err := c.proc.sysctl(key, 1)
	if err != nil {
		return unknown(key, err, why)
	}
	s := Setting{Name: key, key: key, Current: grouped(v[0]), Needed: grouped(c.cfg.Conns), Status: OK, Why: why}
	if v[0] < c.cfg.Conns {
		s.Status = Low
		s.How = c.sysctlHow(&s, key, fmt.Sprint(c.cfg.Conns))
	}
	return s
}

func (c *checker) keepalive() Setting {
	const key = "net.ipv4.tcp_keepalive_time"
	why := fmt.Sprintf("TCP keep-alive: probes after this many idle seconds (then tcp_keepalive_intvl apart, "+
		"tcp_keepalive_probes of them), only on sockets that ask for it. The gateway does not: it pings each "+
		"connection after %v of silence (gateway.ping_interval) and closes it after gateway.idle_timeout, which "+
		"finds dead peers sooner and keeps NAT and load-balancer idle timers (longer than %v) from dropping the flow",
		c.cfg.PingInterval, c.cfg.PingInterval)
	v, err := c.proc.sysctl(key, 1)
	if err != nil {
		return unknown(key, err, why)
	}
	cur := fmt.Sprint(v[0])
	iv, err1 := c.proc.sysctl("net.ipv4.tcp_keepalive_intvl", 1)
	pr, err2 := c.proc.sysctl("net.ipv4.tcp_keepalive_probes", 1)
	if err1 == nil && err2 == nil {
		cur = fmt.Sprintf("%d s, %d × %d s", v[0], pr[0], iv[0])
	}
	return Setting{Name: key, key: key, Current: cur, Needed: "-", Status: Info, Why: why}
}

// sysctlHow records that key should be value in a sysctl.d file and says
// how to set it.
func (c *checker) sysctlHow(s *Setting, key, value string) string {
	s.sysctl, s.value = key, value
	if strings.Contains(value, " ") {
		value = `"` + value + `"`
	}
	return fmt.Sprintf("sysctl -w %s=%s; keep it in /etc/sysctl.d (tune apply)", key, value)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
