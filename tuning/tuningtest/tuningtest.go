// Package tuningtest writes fake /proc trees for the tests of package
// tuning and of the commands that use it, so that no test depends on, or
// changes, the machine it runs on.
package tuningtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tree is a fake /proc tree: each key is a path under the root
// ("proc/meminfo") or a sysctl key ("net.core.somaxconn", stored at
// proc/sys/net/core/somaxconn), each value the file's content.
type Tree map[string]string

// ProjectBox is the project's machine as it was read: 24 GiB, Linux's
// defaults, conntrack loaded but tracking nothing, and no
// CAP_SYS_RESOURCE (bit 24 of CapEff clear). Its hard open-file limit,
// 20,000, is an rlimit, not a file: tests pass it to tuning.Check.
func ProjectBox() Tree {
	return Tree{
		"fs.nr_open":                       "1048576\n",
		"fs.file-max":                      "2466170\n",
		"fs.file-nr":                       "736\t0\t2466170\n",
		"net.core.somaxconn":               "4096\n",
		"net.ipv4.tcp_max_syn_backlog":     "2048\n",
		"net.core.netdev_max_backlog":      "1000\n",
		"net.ipv4.ip_local_port_range":     "32768\t60999\n",
		"net.ipv4.tcp_mem":                 "287898\t383867\t575796\n",
		"net.ipv4.tcp_rmem":                "4096\t131072\t33554432\n",
		"net.ipv4.tcp_wmem":                "4096\t16384\t4194304\n",
		"net.ipv4.tcp_tw_reuse":            "2\n",
		"net.ipv4.tcp_fin_timeout":         "60\n",
		"net.ipv4.tcp_max_tw_buckets":      "131072\n",
		"net.ipv4.tcp_keepalive_time":      "7200\n",
		"net.ipv4.tcp_keepalive_intvl":     "75\n",
		"net.ipv4.tcp_keepalive_probes":    "9\n",
		"net.netfilter.nf_conntrack_max":   "262144\n",
		"net.netfilter.nf_conntrack_count": "0\n",
		"proc/meminfo":                     "MemTotal:       24684084 kB\nMemFree:        22358308 kB\n",
		"proc/self/status":                 "Name:\ttune\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n",
	}
}

// Root writes the tree under a new temporary directory of tb and returns
// that directory.
func (tr Tree) Root(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range tr {
		rel := name
		if !strings.Contains(name, "/") {
			rel = filepath.Join("proc", "sys", strings.ReplaceAll(name, ".", "/"))
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
