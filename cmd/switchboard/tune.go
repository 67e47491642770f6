package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard/switchboard/tuning"
)

const tuneUsage = `Usage:
  switchboard tune check [--conns N] [flags]        can this box hold N connections?
  switchboard tune apply --conns N [--write DIR]    the files that let it (dry run)

check reads this process's open-file limits (getrlimit RLIMIT_NOFILE),
/proc/sys and /proc/meminfo, and prints for every setting that bounds
connections its current value, the value N connections need, a status
and why. It exits 1 when N cannot be reached as configured (a LIMIT
row), naming the limit that stops it.

apply prints a sysctl.d file, a systemd drop-in (LimitNOFILE) and
limits.d lines that raise what check found short; --write DIR writes them
under DIR (DIR/sysctl.d/…, DIR/systemd/system/…, DIR/security/limits.d/…).
Neither command changes the running machine. docs/tuning.md explains
each setting.

Run 'switchboard tune check --help' or 'switchboard tune apply --help'
for the flags.
`

// errUnreachable is returned (wrapped) by tune check when the connections
// do not fit; the process exits 1 for it, 2 for other errors.
var errUnreachable = errors.New("not reachable")

func tuneCmd(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, tuneUsage)
		return errors.New("tune: check or apply?")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Print(tuneUsage)
		return nil
	case "check":
		return tuneCheckCmd(args)
	case "apply":
		return tuneApplyCmd(args)
	}
	fmt.Fprint(os.Stderr, tuneUsage)
	return fmt.Errorf("tune: unknown command %q", sub)
}

// tuneFlags registers the flags check and apply share and returns the
// config they fill in.
func tuneFlags(fs *flag.FlagSet, defConns int64) *tuning.Config {
	cfg := &tuning.Config{}
	fs.Int64Var(&cfg.Conns, "conns", defConns, "connections this box should hold, all gateway processes together")
	fs.IntVar(&cfg.Processes, "processes", 1, "gateway processes sharing the port (gateway.reuse_port: true) that hold them; each needs conns/processes open files plus 1000")
	fs.StringVar(&cfg.Root, "root", "/", "read proc/sys and proc/meminfo under this directory instead of / (a copied or fake tree)")
	return cfg
}

func tuneCheckCmd(args []string) error {
	fs := flag.NewFlagSet("tune check", flag.ContinueOnError)
	cfg := tuneFlags(fs, 100_000)
	jsonOut := fs.Bool("json", false, "print the report as JSON instead of the table")
	kernelKiB := fs.Float64("kernel-kib-per-conn", tuning.DefaultKernelBytesPerConn/1024, "kernel memory per idle socket, KiB (measured on the project's box; docs/tuning.md says how)")
	gatewayKiB := fs.Float64("gateway-kib-per-conn", tuning.DefaultGatewayBytesPerConn/1024, "gateway RSS per idle connection, KiB (docs/benchmarks.md)")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", tuning.DefaultPingInterval, "the gateway's gateway.ping_interval, compared with TCP keep-alive")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: switchboard tune check [--conns N] [flags]\n\n"+
			"Exit status: 0 when N connections fit the limits as configured, 1 when a\n"+
			"limit stops them (named on stderr), 2 on a usage error.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseTuneFlags(fs, args); err != nil {
		return ignoreHelp(err) // --help printed the usage: done
	}
	cfg.KernelBytesPerConn = *kernelKiB * 1024
	cfg.GatewayBytesPerConn = *gatewayKiB * 1024
	r, err := tuning.Check(*cfg)
	if err != nil {
		return err
	}
	if *jsonOut {
		err = r.WriteJSON(os.Stdout)
	} else {
		err = r.WriteText(os.Stdout)
	}
	if err != nil {
		return err
	}
	if !r.Reachable {
		return fmt.Errorf("tune check: %w: %s", errUnreachable, strings.TrimPrefix(r.Verdict(), "NOT reachable: "))
	}
	return nil
}

func tuneApplyCmd(args []string) error {
	fs := flag.NewFlagSet("tune apply", flag.ContinueOnError)
	cfg := tuneFlags(fs, 0)
	write := fs.String("write", "", "write the files under this directory (DIR/sysctl.d/…); without it, print them (dry run)")
	var opts tuning.FilesOptions
	fs.StringVar(&opts.Unit, "unit", "switchboard.service", "the gateway's systemd unit, for the drop-in's directory")
	fs.StringVar(&opts.User, "user", "switchboard", "the user the gateway runs as, for the limits.d lines")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: switchboard tune apply --conns N [--write DIR] [flags]\n\n"+
			"Prints (or with --write, writes under DIR) a sysctl.d file raising what\n"+
			"'tune check' finds short, a systemd drop-in with LimitNOFILE and limits.d\n"+
			"lines. It never lowers a setting and never changes the running machine:\n"+
			"copy the files into /etc and run the commands it prints.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseTuneFlags(fs, args); err != nil {
		return ignoreHelp(err) // --help printed the usage: done
	}
	if cfg.Conns <= 0 {
		return errors.New("tune apply: --conns N is required")
	}
	r, err := tuning.Check(*cfg)
	if err != nil {
		return err
	}
	opts.Command = "switchboard tune apply " + strings.Join(args, " ")
	files := r.Files(opts)
	if *write == "" {
		for _, f := range files {
			fmt.Printf("### /etc/%s (then: %s)\n%s\n", f.Path, f.Install, f.Content)
		}
		fmt.Println("### dry run: nothing written. --write DIR writes these files under DIR; copy them into /etc and run the commands above.")
	} else {
		if err := tuning.WriteFiles(*write, files); err != nil {
			return fmt.Errorf("tune apply: %w", err)
		}
		for _, f := range files {
			fmt.Printf("wrote %s (install: copy to /etc/%s, then %s)\n", filepath.Join(*write, f.Path), f.Path, f.Install)
		}
	}
	return nil
}

// ignoreHelp is err, or nil for flag.ErrHelp: --help is not a failure.
func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// parseTuneFlags parses args, which take no positional arguments.
func parseTuneFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
