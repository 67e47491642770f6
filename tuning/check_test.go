package tuning

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/tuning/tuningtest"
)

// box is a fake /proc tree; projectBox is the project's machine.
type box = tuningtest.Tree

var projectBox = tuningtest.ProjectBox

func check(t *testing.T, b box, cfg Config) *Report {
	t.Helper()
	cfg.Root = b.Root(t)
	if cfg.Files == nil {
		cfg.Files = &FileLimit{Soft: 20000, Hard: 20000}
	}
	cfg.PageSize = 4096
	r, err := Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func statuses(r *Report) map[string]Status {
	m := map[string]Status{}
	for _, s := range r.Settings {
		m[s.Name] = s.Status
	}
	return m
}

func find(t *testing.T, r *Report, name string) Setting {
	t.Helper()
	s := r.setting(name)
	if s == nil {
		t.Fatalf("no setting %q", name)
	}
	return *s
}

// TestCheckProjectBoxMillion: the acceptance's case. A million connections
// in one process are stopped by the hard open-file limit of 20,000 alone;
// 53 processes are needed; the memory arithmetic adds up.
func TestCheckProjectBoxMillion(t *testing.T) {
	r := check(t, projectBox(), Config{Conns: 1_000_000})
	if r.Reachable || !slices.Equal(r.StoppedBy, []string{"open-file hard limit"}) {
		t.Fatalf("reachable %v, stopped by %q", r.Reachable, r.StoppedBy)
	}
	if r.FilesPerProcess != 1_001_000 || r.ProcessesNeeded != 53 {
		t.Errorf("files per process %d, processes needed %d; want 1,001,000 and 53", r.FilesPerProcess, r.ProcessesNeeded)
	}
	if r.PerProcess != 19_000 || r.PerProcessBy != "open-file hard limit" || r.Capacity != 19_000 {
		t.Errorf("capacity %d (per process %d by %q)", r.Capacity, r.PerProcess, r.PerProcessBy)
	}
	// file-max less the files open now (736) and 1,000 reserved.
	if r.PerBox != 2_466_170-736-1000 || r.PerBoxBy != "fs.file-max" {
		t.Errorf("per box %d by %q", r.PerBox, r.PerBoxBy)
	}
	m := r.Memory
	if m.KernelBytes != 3_891_200_000 || m.GatewayBytes != 1_904_640_000 ||
		m.TotalBytes != 5_795_840_000 || m.MemTotalBytes != 24684084*1024 {
		t.Errorf("memory %+v", m)
	}
	want := map[string]Status{
		"open-file soft limit":           Low,
		"open-file hard limit":           Limit,
		"fs.nr_open":                     OK,
		"fs.file-max":                    OK,
		"memory (MemTotal)":              OK,
		"net.netfilter.nf_conntrack_max": Low, // tracking nothing: not a limit yet
		"net.core.somaxconn":             Low,
		"net.ipv4.tcp_max_syn_backlog":   Low,
		"net.core.netdev_max_backlog":    Low,
		"net.ipv4.tcp_mem":               Low,
		"net.ipv4.tcp_rmem":              Info,
		"net.ipv4.tcp_wmem":              Info,
		"net.ipv4.ip_local_port_range":   Info,
		"net.ipv4.tcp_tw_reuse":          Info,
		"net.ipv4.tcp_fin_timeout":       Info,
		"net.ipv4.tcp_max_tw_buckets":    Low,
		"net.ipv4.tcp_keepalive_time":    Info,
	}
	if got := statuses(r); !mapsEqual(got, want) {
		t.Errorf("statuses:\n got %v\nwant %v", got, want)
	}
	hard := find(t, r, "open-file hard limit")
	for _, s := range []string{"lacks CAP_SYS_RESOURCE", "LimitNOFILE=1001000", "run 53 gateway processes"} {
		if !strings.Contains(hard.How, s) {
			t.Errorf("hard limit's how lacks %q: %s", s, hard.How)
		}
	}
	if !strings.Contains(r.Verdict(), "open-file hard limit = 20,000 (allows 19,000 per process)") {
		t.Errorf("verdict: %s", r.Verdict())
	}
}

func mapsEqual(a, b map[string]Status) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestCheckProcesses: spread over processes sharing the port, the hard
// limit holds the connections from 53 processes on, not at 52.
func TestCheckProcesses(t *testing.T) {
	for _, tc := range []struct {
		processes int
		reachable bool
		capacity  int64
	}{{52, false, 52 * 19_000}, {53, true, 53 * 19_000}} {
		r := check(t, projectBox(), Config{Conns: 1_000_000, Processes: tc.processes})
		if r.Reachable != tc.reachable || r.Capacity != tc.capacity {
			t.Errorf("%d processes: reachable %v capacity %d; want %v %d (stopped by %q)",
				tc.processes, r.Reachable, r.Capacity, tc.reachable, tc.capacity, r.StoppedBy)
		}
		if want := ceilDiv(1_000_000, int64(tc.processes)) + 1000; r.FilesPerProcess != want {
			t.Errorf("%d processes: %d files each, want %d", tc.processes, r.FilesPerProcess, want)
		}
	}
}

// TestCheckStoppedByTightestFirst: several limits stop the connections;
// the one that allows the fewest is named first, whatever its scope.
func TestCheckStoppedByTightestFirst(t *testing.T) {
	b := projectBox()
	b["proc/meminfo"] = "MemTotal: 1048576 kB\n" // 1 GiB: 206,449 idle connections
	b["fs.file-max"] = "200736\n"                // 100,000 after 736 open and 1,000 reserved by each of 100 processes
	r := check(t, b, Config{Conns: 1_000_000, Processes: 100})
	if want := []string{"fs.file-max", "memory (MemTotal)"}; !slices.Equal(r.StoppedBy, want) {
		t.Fatalf("stopped by %q, want %q", r.StoppedBy, want)
	}
	if r.Capacity != 100_000 || r.PerBoxBy != "fs.file-max" {
		t.Errorf("capacity %d by %q", r.Capacity, r.PerBoxBy)
	}
	mem := find(t, r, "memory (MemTotal)")
	if perConn := 3.8*1024 + 1.86*1024; mem.Allows != int64(float64(1<<30)/perConn) {
		t.Errorf("memory allows %d", mem.Allows)
	}
	// The hard limit, 19,000 a process, holds 10,000 each.
	if s := find(t, r, "open-file hard limit"); s.Status != OK {
		t.Errorf("hard limit %s with 100 processes", s.Status)
	}
}

// TestCheckNrOpen: past fs.nr_open no hard limit can be set high enough;
// it stops the connections with the hard limit, and apply raises it.
func TestCheckNrOpen(t *testing.T) {
	r := check(t, projectBox(), Config{Conns: 2_000_000})
	if want := []string{"open-file hard limit", "fs.nr_open"}; !slices.Equal(r.StoppedBy, want) {
		t.Fatalf("stopped by %q, want %q", r.StoppedBy, want)
	}
	if s := find(t, r, "fs.nr_open"); s.Allows != 1_048_576-1000 || s.Needed != "2,001,000" {
		t.Errorf("nr_open allows %d, needs %s", s.Allows, s.Needed)
	}
	if sysctl := r.Files(FilesOptions{})[0].Content; !strings.Contains(sysctl, "\nfs.nr_open = 2001000\n") {
		t.Errorf("sysctl.d file does not raise fs.nr_open:\n%s", sysctl)
	}
}

// TestCheckConntrack: a missing nf_conntrack_max means the module is not
// loaded (nothing to raise); loaded and tracking, a small table stops the
// connections; tracking nothing, it is only advice.
func TestCheckConntrack(t *testing.T) {
	for _, tc := range []struct {
		name         string
		max, count   string // "" leaves the file out
		want         Status
		wantCurrent  string
		stopsIt      bool
		wantSysctlIn bool
	}{
		{"not loaded", "", "", OK, "not loaded", false, false},
		{"tracking, too small", "262144\n", "12\n", Limit, "262,144", true, true},
		{"tracking nothing, too small", "262144\n", "0\n", Low, "262,144", false, true},
		{"tracking, no room for churn", "1100000\n", "12\n", Low, "1,100,000", false, true},
		{"tracking, enough", "1250000\n", "12\n", OK, "1,250,000", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := projectBox()
			delete(b, "net.netfilter.nf_conntrack_max")
			delete(b, "net.netfilter.nf_conntrack_count")
			if tc.max != "" {
				b["net.netfilter.nf_conntrack_max"] = tc.max
				b["net.netfilter.nf_conntrack_count"] = tc.count
			}
			r := check(t, b, Config{Conns: 1_000_000, Processes: 53})
			s := find(t, r, "net.netfilter.nf_conntrack_max")
			if s.Status != tc.want || s.Current != tc.wantCurrent {
				t.Errorf("status %s current %q; want %s %q", s.Status, s.Current, tc.want, tc.wantCurrent)
			}
			if stops := slices.Contains(r.StoppedBy, s.Name); stops != tc.stopsIt {
				t.Errorf("stops it: %v, want %v (%q)", stops, tc.stopsIt, r.StoppedBy)
			}
			if got := s.sysctl == "net.netfilter.nf_conntrack_max" && s.value == "1250000"; got != tc.wantSysctlIn {
				t.Errorf("sysctl %q=%q", s.sysctl, s.value)
			}
		})
	}
}

// TestCheckTCPMem: tcp_mem is in pages; a million connections want a
// million pages below pressure and two million at most, but never more
// than half the memory, and never less than now.
func TestCheckTCPMem(t *testing.T) {
	r := check(t, projectBox(), Config{Conns: 1_000_000, Processes: 53})
	s := find(t, r, "net.ipv4.tcp_mem")
	if s.Needed != "287898 1000000 2000000" || s.value != s.Needed || s.Status != Low {
		t.Errorf("24 GiB: needed %q value %q %s", s.Needed, s.value, s.Status)
	}
	if !strings.Contains(s.Why, "pressure at 1.46 GiB, max 2.20 GiB") {
		t.Errorf("why does not convert pages: %s", s.Why)
	}
	b := projectBox()
	b["proc/meminfo"] = "MemTotal: 4194304 kB\n" // 4 GiB: half is 524,288 pages
	s = find(t, check(t, b, Config{Conns: 1_000_000, Processes: 53}), "net.ipv4.tcp_mem")
	if s.Needed != "287898 524288 575796" {
		t.Errorf("4 GiB: needed %q, want pressure capped at half the memory and max kept", s.Needed)
	}
	s = find(t, check(t, projectBox(), Config{Conns: 1000}), "net.ipv4.tcp_mem")
	if s.Status != OK || s.value != "" {
		t.Errorf("1,000 connections: %s, value %q", s.Status, s.value)
	}
}

// TestCheckPortRange: the range's two numbers give the ports per source
// address, and the source addresses a client box needs.
func TestCheckPortRange(t *testing.T) {
	s := find(t, check(t, projectBox(), Config{Conns: 1_000_000}), "net.ipv4.ip_local_port_range")
	if s.Current != "32768 60999" || s.Needed != "any; clients: 36 addresses" || s.Status != Info {
		t.Errorf("%q %q %s", s.Current, s.Needed, s.Status)
	}
	if !strings.Contains(s.Why, "28,232 here") || !strings.Contains(s.Why, "4-tuple") {
		t.Errorf("why: %s", s.Why)
	}
	b := projectBox()
	b["net.ipv4.ip_local_port_range"] = "32768\n"
	s = find(t, check(t, b, Config{Conns: 1000}), "net.ipv4.ip_local_port_range")
	if s.Status != Unknown || !strings.Contains(s.How, "1 values, want 2") {
		t.Errorf("one number: %s %q", s.Status, s.How)
	}
}

// TestCheckMissingFiles: with nothing under the root but the rlimits, every
// sysctl is unknown, conntrack is "not loaded", and only the open-file
// limits decide.
func TestCheckMissingFiles(t *testing.T) {
	r := check(t, box{}, Config{Conns: 1000})
	for _, s := range r.Settings {
		switch s.Name {
		case "open-file soft limit", "open-file hard limit":
			if s.Status != OK {
				t.Errorf("%s: %s", s.Name, s.Status)
			}
		case "net.netfilter.nf_conntrack_max":
			if s.Current != "not loaded" {
				t.Errorf("conntrack: %q", s.Current)
			}
		default:
			if s.Status != Unknown || !strings.Contains(s.How, "no such file") {
				t.Errorf("%s: %s %q", s.Name, s.Status, s.How)
			}
		}
	}
	if !r.Reachable || r.Capacity != 19_000 || r.PerBox != 0 {
		t.Errorf("reachable %v capacity %d per box %d", r.Reachable, r.Capacity, r.PerBox)
	}
	r = check(t, box{}, Config{Conns: 100_000})
	if r.Reachable || !slices.Equal(r.StoppedBy, []string{"open-file hard limit"}) {
		t.Errorf("100,000: reachable %v stopped by %q", r.Reachable, r.StoppedBy)
	}
	// No proc/self/status: nothing said about capabilities.
	if how := find(t, r, "open-file hard limit").How; strings.Contains(how, "CAP_SYS_RESOURCE") {
		t.Errorf("how guesses the capabilities: %s", how)
	}
}

// TestCheckSoftLimit: a soft limit below the need is fine when the hard
// limit allows raising it, as the gateway does.
func TestCheckSoftLimit(t *testing.T) {
	for _, tc := range []struct {
		fl   FileLimit
		want Status
	}{
		{FileLimit{Soft: 1024, Hard: 20000}, OK},
		{FileLimit{Soft: 1024, Hard: 2000}, Low},
		{FileLimit{Soft: 20000, Hard: 20000}, OK},
	} {
		fl := tc.fl
		r := check(t, projectBox(), Config{Conns: 10_000, Files: &fl})
		if s := find(t, r, "open-file soft limit"); s.Status != tc.want {
			t.Errorf("%+v: %s, want %s", tc.fl, s.Status, tc.want)
		}
	}
}

// TestCheckCapSysResource: with the capability, the hard limit's advice
// does not say the process cannot raise it.
func TestCheckCapSysResource(t *testing.T) {
	b := projectBox()
	b["proc/self/status"] = "CapEff:\t000001ffffffffff\n"
	how := find(t, check(t, b, Config{Conns: 1_000_000}), "open-file hard limit").How
	if strings.Contains(how, "lacks") || !strings.HasPrefix(how, "LimitNOFILE=1001000") {
		t.Errorf("how: %s", how)
	}
}

func TestCheckBadConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Conns: -1}, {Conns: 10, Processes: -1}, {Conns: 10, KernelBytesPerConn: -1}} {
		if _, err := Check(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// TestWriteText: the table has its columns, every row, no trailing spaces,
// the memory arithmetic and the verdict; the JSON carries the same.
func TestWriteText(t *testing.T) {
	r := check(t, projectBox(), Config{Conns: 1_000_000})
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"SETTING", "CURRENT", "NEEDED", "STATUS", "WHY / HOW",
		"open-file hard limit            20,000",
		"kernel   1,000,000 × 3.8 KiB per socket   = 3.62 GiB",
		"gateway  1,000,000 × 1.860 KiB per conn   = 1.77 GiB",
		"total    5.40 GiB of MemTotal 23.54 GiB (23%)",
		"processes needed under the hard open-file limit of 20,000: 53",
		"NOT reachable: 1,000,000 connections are stopped by open-file hard limit",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	for _, s := range r.Settings {
		if !strings.Contains(out, "\n"+s.Name+" ") {
			t.Errorf("no row for %s", s.Name)
		}
	}
	for i, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("line %d ends in a space: %q", i+1, line)
		}
	}

	b.Reset()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Reachable || got.Capacity != 19_000 || len(got.Settings) != len(r.Settings) ||
		got.Memory.TotalBytes != r.Memory.TotalBytes || got.StoppedBy[0] != "open-file hard limit" {
		t.Errorf("JSON: %+v", got)
	}
}

func TestParsers(t *testing.T) {
	if v, err := parseInts([]byte("287898\t383867\t575796\n"), 3, "tcp_mem"); err != nil || !slices.Equal(v, []int64{287898, 383867, 575796}) {
		t.Errorf("tcp_mem: %v %v", v, err)
	}
	for _, bad := range []string{"", "1 2", "1 2 x", "1 2 3 4"} {
		if _, err := parseInts([]byte(bad), 3, "x"); err == nil {
			t.Errorf("%q parsed as three numbers", bad)
		}
	}
	if n, err := parseMemTotal([]byte("MemFree: 1 kB\nMemTotal:   24684084 kB\n")); err != nil || n != 24684084*1024 {
		t.Errorf("MemTotal: %d %v", n, err)
	}
	for _, bad := range []string{"MemFree: 1 kB\n", "MemTotal: 12\n", "MemTotal: x kB\n"} {
		if _, err := parseMemTotal([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for status, want := range map[string]bool{
		"CapEff:\t000001fffeffffff\n": false, // bit 24 clear: this machine
		"CapEff:\t000001ffffffffff\n": true,
		"CapEff:\t0000000001000000\n": true,
		"CapEff:\t0000000000000000\n": false,
	} {
		if got, err := parseCapSysResource([]byte(status)); err != nil || got != want {
			t.Errorf("%q: %v %v", status, got, err)
		}
	}
	if _, err := parseCapSysResource([]byte("Name: x\n")); err == nil {
		t.Error("no CapEff line parsed")
	}
}

func TestGrouped(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1_001_000: "1,001,000", -20000: "-20,000"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
}
