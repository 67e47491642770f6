package tuning

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// activeLines are a file's lines that are neither blank nor comments.
func activeLines(content string) []string {
	var out []string
	for _, l := range strings.Split(content, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestFilesProjectBox: for a million connections in one process, the
// sysctl.d file raises exactly what check found short, the drop-in and
// limits.d give each process its files, and nothing is lowered.
func TestFilesProjectBox(t *testing.T) {
	r := check(t, projectBox(), Config{Conns: 1_000_000})
	files := r.Files(FilesOptions{})
	if len(files) != 3 {
		t.Fatalf("%d files", len(files))
	}
	byPath := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
	}

	sysctl := byPath["sysctl.d/60-switchboard.conf"]
	want := []string{
		"net.netfilter.nf_conntrack_max = 1250000",
		"net.core.somaxconn = 65535",
		"net.ipv4.tcp_max_syn_backlog = 65535",
		"net.core.netdev_max_backlog = 16384",
		"net.ipv4.tcp_mem = 287898 1000000 2000000",
		"net.ipv4.tcp_max_tw_buckets = 1000000",
	}
	if got := activeLines(sysctl.Content); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sysctl.d settings:\n%s\nwant:\n%s\nfile:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), sysctl.Content)
	}
	for _, s := range []string{"#   fs.nr_open = 1,048,576", "#   fs.file-max = 2,466,170", "# net.ipv4.ip_local_port_range = 10240 65535",
		"switchboard tune apply --conns 1000000 --processes 1"} {
		if !strings.Contains(sysctl.Content, s) {
			t.Errorf("sysctl.d file lacks %q:\n%s", s, sysctl.Content)
		}
	}
	if sysctl.Install != "sysctl --system" {
		t.Errorf("install: %q", sysctl.Install)
	}

	dropIn := byPath["systemd/system/switchboard.service.d/60-switchboard-limits.conf"]
	if got := activeLines(dropIn.Content); strings.Join(got, "\n") != "[Service]\nLimitNOFILE=1001000" {
		t.Errorf("drop-in: %q", got)
	}
	limits := byPath["security/limits.d/60-switchboard.conf"]
	if got := activeLines(limits.Content); strings.Join(got, "\n") != "switchboard soft nofile 1001000\nswitchboard hard nofile 1001000" {
		t.Errorf("limits.d: %q", got)
	}
}

// TestFilesProcessesAndNames: with several processes each gets its share;
// the unit and user name the files.
func TestFilesProcessesAndNames(t *testing.T) {
	r := check(t, projectBox(), Config{Conns: 1_000_000, Processes: 53})
	files := r.Files(FilesOptions{Unit: "sb@.service", User: "chat"})
	if files[1].Path != "systemd/system/sb@.service.d/60-switchboard-limits.conf" ||
		!strings.Contains(files[1].Content, "LimitNOFILE=19868\n") { // ceil(1e6/53) + 1000
		t.Errorf("drop-in %s:\n%s", files[1].Path, files[1].Content)
	}
	if !strings.Contains(files[1].Install, "systemctl restart sb@.service") {
		t.Errorf("install: %q", files[1].Install)
	}
	if !strings.Contains(files[2].Content, "chat hard nofile 19868\n") {
		t.Errorf("limits.d:\n%s", files[2].Content)
	}
}

// TestFilesNeverLower: a box already above every need gets a sysctl.d file
// that sets nothing.
func TestFilesNeverLower(t *testing.T) {
	b := projectBox()
	b["net.core.somaxconn"] = "100000\n"
	b["net.ipv4.tcp_max_syn_backlog"] = "100000\n"
	b["net.core.netdev_max_backlog"] = "100000\n"
	b["net.ipv4.tcp_mem"] = "3000000 4000000 5000000\n"
	b["net.ipv4.tcp_max_tw_buckets"] = "5000000\n"
	b["net.netfilter.nf_conntrack_max"] = "4000000\n"
	r := check(t, b, Config{Conns: 1_000_000, Processes: 53})
	sysctl := r.Files(FilesOptions{})[0].Content
	if got := activeLines(sysctl); len(got) != 0 {
		t.Errorf("sets %q on a box that needs nothing", got)
	}
	if !strings.Contains(sysctl, "#   net.core.somaxconn = 100,000") {
		t.Errorf("does not list what is enough:\n%s", sysctl)
	}
}

// TestWriteFiles: files land under the directory at their /etc paths, and
// nothing else is written.
func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	files := check(t, projectBox(), Config{Conns: 1_000_000}).Files(FilesOptions{})
	if err := WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	var written []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			written = append(written, rel)
		}
		return err
	})
	if len(written) != len(files) {
		t.Errorf("wrote %q", written)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil || string(b) != f.Content {
			t.Errorf("%s: %v", f.Path, err)
		}
	}
	// Written again: replaced, not appended to.
	if err := WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, files[1].Path))
	if n := len(regexp.MustCompile(`LimitNOFILE=`).FindAll(b, -1)); n != 1 {
		t.Errorf("drop-in has %d LimitNOFILE lines after a second write", n)
	}
	if err := WriteFiles("", files); err == nil {
		t.Error("wrote with no directory")
	}
}
