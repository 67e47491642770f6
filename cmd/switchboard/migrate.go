package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard/switchboard/backends/cassandra"
)

const migrateUsage = `Usage: switchboard migrate [--hosts H:P,...] [--keyspace KS] [--replication N|dc:N,...] [--dry-run]

Creates the Cassandra keyspace if it is missing (with --replication) and
applies the schema migrations this binary carries that the keyspace has
not recorded yet, in order, waiting for schema agreement after each
statement. A second run applies nothing. It refuses, applying nothing,
when a migration recorded as applied differs from the binary's copy.
--dry-run prints the CQL of the pending migrations without applying them.
The password, if the cluster wants one, is read from
SWITCHBOARD_CASSANDRA_PASSWORD.

Exit status: 0 on success, 1 when the migration failed, 2 on a usage
error.

Flags:
`

// migrateCmd runs `switchboard migrate` and returns the exit status.
func migrateCmd(args []string) int {
	return runMigrate(args, os.Stdout, os.Stderr)
}

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hosts := fs.String("hosts", cassandra.DefaultHost, "Cassandra contact points, host:port, comma separated")
	var cfg cassandra.Config
	fs.StringVar(&cfg.Keyspace, "keyspace", cassandra.DefaultKeyspace, "the keyspace")
	fs.StringVar(&cfg.Replication, "replication", "3", "replication when creating the keyspace: N (SimpleStrategy, factor N) or dc1:N,dc2:M (NetworkTopologyStrategy)")
	fs.StringVar(&cfg.LocalDC, "local-dc", "", "the local data center (routes requests to it first)")
	fs.StringVar(&cfg.Username, "username", "", "user name, if the cluster authenticates (password from SWITCHBOARD_CASSANDRA_PASSWORD)")
	dryRun := fs.Bool("dry-run", false, "print the pending migrations' CQL, apply nothing")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), migrateUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard migrate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for h := range strings.SplitSeq(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Hosts = append(cfg.Hosts, h)
		}
	}
	if cfg.Username != "" {
		cfg.Password = os.Getenv("SWITCHBOARD_CASSANDRA_PASSWORD")
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "switchboard migrate: %v\n", err)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "switchboard migrate: --timeout must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var done []string
	var err error
	if *dryRun {
		var pending []cassandra.Migration
		pending, err = cassandra.Pending(ctx, cfg)
		for _, m := range pending {
			fmt.Fprintf(stdout, "-- pending: %s (sha256 %s)\n%s\n", m.Name, m.Checksum, strings.TrimRight(m.CQL, "\n"))
			done = append(done, m.Name)
		}
	} else {
		done, err = cassandra.Migrate(ctx, cfg)
		for _, name := range done {
			fmt.Fprintf(stdout, "applied %s\n", name)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchboard migrate: %v\n", err)
		return 1
	}
	if len(done) == 0 {
		fmt.Fprintf(stdout, "keyspace %s is up to date: nothing to apply\n", cfg.Keyspace)
	}
	return 0
}
