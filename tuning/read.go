package tuning

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procFS reads a /proc tree under root ("/" on a live machine, a
// directory of files in tests).
type procFS struct{ root string }

// sysctlPath is where the sysctl key (net.core.somaxconn) lives under
// proc/sys.
func sysctlPath(key string) string {
	return filepath.Join("proc", "sys", strings.ReplaceAll(key, ".", "/"))
}

func (p procFS) read(rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(p.root, rel))
}

// ints reads a file of whitespace-separated integers, such as tcp_mem
// ("287898	383867	575796") or ip_local_port_range ("32768	60999"),
// and checks that it holds want of them.
func (p procFS) ints(rel string, want int) ([]int64, error) {
	b, err := p.read(rel)
	if err != nil {
		return nil, err
	}
	return parseInts(b, want, rel)
}

// sysctl reads a sysctl of want integers by its key.
func (p procFS) sysctl(key string, want int) ([]int64, error) {
	return p.ints(sysctlPath(key), want)
}

func parseInts(b []byte, want int, name string) ([]int64, error) {
	f := bytes.Fields(b)
	if len(f) != want {
		return nil, fmt.Errorf("%s: %d values, want %d", name, len(f), want)
	}
	v := make([]int64, want)
	for i, s := range f {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		v[i] = n
	}
	return v, nil
}

// memTotal reads MemTotal from proc/meminfo, in bytes.
func (p procFS) memTotal() (int64, error) {
	b, err := p.read("proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMemTotal(b)
}

func parseMemTotal(b []byte) (int64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("MemTotal:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("meminfo: bad MemTotal line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("meminfo: %w", err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("meminfo: no MemTotal line")
}

// capSysResource is CAP_SYS_RESOURCE's bit in the capability sets: the
// right to raise a hard rlimit (up to fs.nr_open, which binds everyone).
const capSysResource = 24

// canRaiseHard reports whether the process that proc/self/status describes
// holds CAP_SYS_RESOURCE in its effective set, which raising a hard
// rlimit needs.
func (p procFS) canRaiseHard() (bool, error) {
	b, err := p.read("proc/self/status")
	if err != nil {
		return false, err
	}
	return parseCapSysResource(b)
}

func parseCapSysResource(b []byte) (bool, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("CapEff:"))
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 16, 64)
		if err != nil {
			return false, fmt.Errorf("status: CapEff: %w", err)
		}
		return caps&(1<<capSysResource) != 0, nil
	}
	return false, fmt.Errorf("status: no CapEff line")
}
