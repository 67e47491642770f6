package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// ServerSample is what the harness can see of the server at one moment.
// A figure that could not be read is -1.
type ServerSample struct {
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// SysSeconds is the kernel part of CPUSeconds (known from /proc only).
	SysSeconds  float64 `json:"sys_seconds"`
	Connections float64 `json:"connections"`
	// Source says where RSS and CPU came from: "proc" or "metrics".
	Source string `json:"source"`
}

// probe reads the server's resident memory and CPU from /proc when its pid
// is known (summed over its pids: several gateway processes), else from its
// Prometheus /metrics, and its open connections from /metrics.
type probe struct {
	pids       []int
	metricsURL string
	client     *http.Client
}

func (p *probe) sample(ctx context.Context) ServerSample {
	s := ServerSample{RSSBytes: -1, CPUSeconds: -1, SysSeconds: -1, Connections: -1}
	m := p.metrics(ctx)
	// With several gateway processes behind one port, /metrics is one
	// process's, whichever the kernel picked: not the server's count.
	if v, ok := m["switchboard_gateway_connections"]; ok && len(p.pids) <= 1 {
		s.Connections = v
	}
	if len(p.pids) > 0 {
		var rss int64
		var cpu cpuTime
		var err error
		for _, pid := range p.pids {
			r, rerr := procRSS(pid)
			c, cerr := procCPU(pid)
			err = errors.Join(err, rerr, cerr)
			rss += r
			cpu.User += c.User
			cpu.Sys += c.Sys
		}
		if err == nil { // all or nothing: a partial sum would mislead
			s.RSSBytes, s.Source = rss, "proc"
			s.CPUSeconds, s.SysSeconds = cpu.total(), cpu.Sys
		}
	}
	if s.RSSBytes < 0 {
		if v, ok := m["process_resident_memory_bytes"]; ok {
			s.RSSBytes, s.Source = int64(v), "metrics"
		}
	}
	if s.CPUSeconds < 0 {
		if v, ok := m["process_cpu_seconds_total"]; ok {
			s.CPUSeconds = v
		}
	}
	return s
}

// metrics fetches the server's /metrics and sums each series by name.
// Failure gives an empty map.
func (p *probe) metrics(ctx context.Context) map[string]float64 {
	m := map[string]float64{}
	if p.metricsURL == "" {
		return m
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	if err != nil {
		return m
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if v, err := strconv.ParseFloat(line[sp+1:], 64); err == nil {
			m[name] += v
		}
	}
	return m
}

// procRSS reads VmRSS from /proc/PID/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuTime is user and system CPU seconds.
type cpuTime struct{ User, Sys float64 }

func (c cpuTime) total() float64 { return c.User + c.Sys }

// procCPU reads utime and stime from /proc/PID/stat.
func procCPU(pid int) (cpuTime, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTime{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTime{}, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return cpuTime{}, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	// Fields 14 and 15 of stat; f[0] is field 3 (state).
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTime{}, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return cpuTime{float64(ut) / clockTicks, float64(st) / clockTicks}, nil
}

// Sockstat is the kernel's TCP socket accounting from /proc/net/sockstat
// (this network namespace: both ends of loopback connections count).
type Sockstat struct {
	InUse     int64 `json:"inuse"`
	TimeWait  int64 `json:"tw"`
	MemPages  int64 `json:"mem_pages"`
	PageBytes int64 `json:"page_bytes"`
}

func readSockstat() (Sockstat, error) {
	s := Sockstat{PageBytes: int64(os.Getpagesize())}
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return s, err
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("TCP:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			v, _ := strconv.ParseInt(string(f[i+1]), 10, 64)
			switch string(f[i]) {
			case "inuse":
				s.InUse = v
			case "tw":
				s.TimeWait = v
			case "mem":
				s.MemPages = v
			}
		}
		return s, nil
	}
	return s, fmt.Errorf("no TCP line in /proc/net/sockstat")
}

// selfCPU returns the CPU time used by this process and its waited-for
// children.
// readSlab reads the kernel's slab memory (/proc/meminfo Slab: socket
// structures, inodes, dentries, epoll items live there) in bytes.
func readSlab() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Slab:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no Slab in /proc/meminfo")
}

// conntrackState is the kernel's connection tracking table: entries and
// limit. Each TCP connection tracked is one entry (both directions).
type conntrackState struct{ count, max int64 }

// readConntrack reads it; an error when conntrack is not loaded.
func readConntrack() (conntrackState, error) {
	var st conntrackState
	for _, f := range []struct {
		path string
		v    *int64
	}{{"/proc/sys/net/netfilter/nf_conntrack_count", &st.count}, {"/proc/sys/net/netfilter/nf_conntrack_max", &st.max}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return st, err
		}
		if *f.v, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return st, err
		}
	}
	return st, nil
}

func selfCPU() cpuTime { return rusage(syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN) }

// ownCPU is this process's CPU time alone, without children it reaped.
func ownCPU() cpuTime { return rusage(syscall.RUSAGE_SELF) }

func rusage(whos ...int) cpuTime {
	var c cpuTime
	for _, who := range whos {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			c.User += tvSeconds(ru.Utime)
			c.Sys += tvSeconds(ru.Stime)
		}
	}
	return c
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the resulting limits.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, rl.Max, err
		}
	}
	return rl.Cur, rl.Max, nil
}

// CPU is the CPU time of the generator and the server over a scenario's
// measured window, so a reader can tell which one was saturated.
type CPU struct {
	WindowSeconds    float64 `json:"window_seconds"`
	GeneratorSeconds float64 `json:"generator_seconds"`
	// GeneratorPercent is of one CPU; the box has Environment.CPUs.
	GeneratorPercent float64 `json:"generator_percent"`
	// GeneratorSysSeconds is the kernel part: on loopback it includes much
	// of the TCP work of both ends.
	GeneratorSysSeconds float64 `json:"generator_sys_seconds"`
	ServerSeconds       float64 `json:"server_seconds"`     // -1: unknown
	ServerPercent       float64 `json:"server_percent"`     // -1: unknown
	ServerSysSeconds    float64 `json:"server_sys_seconds"` // -1: unknown
}

// CPUWindow measures CPU time from its start to Stop. Not safe for
// concurrent use.
type CPUWindow struct {
	env    *Env
	start  time.Time
	gen    cpuTime
	server ServerSample
	extra  cpuTime // CPU of worker processes still running, added by the scenario
}

// StartCPU starts measuring the generator's and the server's CPU time.
func (e *Env) StartCPU(ctx context.Context) *CPUWindow {
	return &CPUWindow{env: e, start: time.Now(), gen: selfCPU(), server: e.probe.sample(ctx)}
}

// AddGenerator adds CPU time used by generator processes that are not
// waited for yet (getrusage counts children only once waited).
func (w *CPUWindow) AddGenerator(user, sys float64) {
	w.extra.User += user
	w.extra.Sys += sys
}

// Stop ends the window.
func (w *CPUWindow) Stop(ctx context.Context) *CPU {
	c := &CPU{WindowSeconds: time.Since(w.start).Seconds(), ServerSeconds: -1, ServerPercent: -1, ServerSysSeconds: -1}
	now := selfCPU()
	c.GeneratorSeconds = now.total() - w.gen.total() + w.extra.total()
	c.GeneratorSysSeconds = now.Sys - w.gen.Sys + w.extra.Sys
	if c.WindowSeconds > 0 {
		c.GeneratorPercent = 100 * c.GeneratorSeconds / c.WindowSeconds
	}
	s := w.env.probe.sample(ctx)
	if s.CPUSeconds >= 0 && w.server.CPUSeconds >= 0 {
		c.ServerSeconds = s.CPUSeconds - w.server.CPUSeconds
		if c.WindowSeconds > 0 {
			c.ServerPercent = 100 * c.ServerSeconds / c.WindowSeconds
		}
	}
	if s.SysSeconds >= 0 && w.server.SysSeconds >= 0 {
		c.ServerSysSeconds = s.SysSeconds - w.server.SysSeconds
	}
	return c
}
