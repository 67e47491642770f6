package tuning

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// File is a configuration file that sets the limits a Report needs.
type File struct {
	// Path is where the file belongs, relative to /etc
	// (sysctl.d/60-switchboard.conf).
	Path string `json:"path"`
	// Content is the file's text.
	Content string `json:"content"`
	// Install is the command that puts the file in force after it is
	// copied into /etc.
	Install string `json:"install"`
}

// FilesOptions names what the files configure. The zero value means the
// defaults.
type FilesOptions struct {
	// Unit is the gateway's systemd unit. Default "switchboard.service".
	Unit string
	// User is the user the gateway runs as, for limits.conf. Default
	// "switchboard".
	User string
	// Command is the command line named in the files' headers. Default
	// "switchboard tune apply --conns N --processes P".
	Command string
}

// Files returns the files that give the box the settings r found below
// what its connections need: a sysctl.d file, a systemd drop-in with
// LimitNOFILE and limits.d lines. It never lowers a setting; one that is
// already enough stays out of the sysctl.d file. Safe for concurrent use.
func (r *Report) Files(opts FilesOptions) []File {
	if opts.Unit == "" {
		opts.Unit = "switchboard.service"
	}
	if opts.User == "" {
		opts.User = "switchboard"
	}
	if opts.Command == "" {
		opts.Command = fmt.Sprintf("switchboard tune apply --conns %d --processes %d", r.Conns, r.Processes)
	}
	header := fmt.Sprintf("# Written by `%s`:\n# limits for %s connections in %s.\n",
		opts.Command, grouped(r.Conns), plural(int64(r.Processes), "gateway process", "gateway processes"))

	var sysctl strings.Builder
	sysctl.WriteString(header)
	var enough []string
	for _, s := range r.Settings {
		switch {
		case s.sysctl != "":
			fmt.Fprintf(&sysctl, "\n# %s\n%s = %s\n", strings.Join(wrap(firstSentence(s.Why), 70), "\n# "), s.sysctl, s.value)
		case s.key != "" && s.Status == OK:
			enough = append(enough, fmt.Sprintf("#   %s = %s", s.Name, s.Current))
		}
	}
	if len(enough) > 0 {
		fmt.Fprintf(&sysctl, "\n# Already enough here, so not set:\n%s\n", strings.Join(enough, "\n"))
	}
	sysctl.WriteString("\n# Only for boxes that open many connections to one address (load generators,\n" +
		"# proxies): more ports per source address.\n# net.ipv4.ip_local_port_range = 10240 65535\n# net.ipv4.tcp_tw_reuse = 1\n")

	nofile := r.FilesPerProcess
	dropIn := fmt.Sprintf("%s\n# Open files per gateway process: its share of the connections plus %d.\n[Service]\nLimitNOFILE=%d\n",
		header, r.ReservedFiles, nofile)
	limits := fmt.Sprintf("%s# For a gateway started from a login session (pam_limits); the same lines\n"+
		"# may be appended to /etc/security/limits.conf instead.\n%s soft nofile %d\n%s hard nofile %d\n",
		header, opts.User, nofile, opts.User, nofile)

	return []File{
		{Path: "sysctl.d/60-switchboard.conf", Content: sysctl.String(), Install: "sysctl --system"},
		{Path: filepath.Join("systemd/system", opts.Unit+".d", "60-switchboard-limits.conf"), Content: dropIn,
			Install: "systemctl daemon-reload && systemctl restart " + opts.Unit},
		{Path: "security/limits.d/60-switchboard.conf", Content: limits, Install: "log in again: pam_limits reads it at login"},
	}
}

// firstSentence is s up to its first ';' or '.' followed by a space.
func firstSentence(s string) string {
	if i := strings.IndexAny(s, ";"); i > 0 {
		s = s[:i]
	}
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i]
	}
	return s
}

// WriteFiles writes files under dir, each at dir/Path (so dir "/etc"
// installs them), creating directories as needed and replacing files of
// the same names. It writes nowhere else and changes no running setting.
func WriteFiles(dir string, files []File) error {
	if dir == "" {
		return errors.New("tuning: no directory to write into")
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.Content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
