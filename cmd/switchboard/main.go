// Command switchboard is Switchboard's one binary: the server and the tools
// around it. Run it with no arguments to serve on the embedded backends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `switchboard: a WebSocket messaging backend

Usage:
  switchboard [serve] [flags]     run the server (the default)
  switchboard token --user ID     print an access token for a user
  switchboard chat --user ID      chat from the terminal
  switchboard loadtest SCENARIO   measure a running server (idle, connect, chat)
  switchboard plan [flags]        size a fleet: gateways, Kafka, Cassandra, Redis, network
  switchboard tune check|apply    kernel and open-file limits for N connections
  switchboard migrate [flags]     create or update the Cassandra schema (docs/deploy.md)
  switchboard version             print the version

Run 'switchboard <command> --help' for a command's flags.
`

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "switchboard:", err)
		}
		if errors.Is(err, errUnreachable) {
			os.Exit(1) // tune check: the box cannot hold the connections
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Print(usage)
		return nil
	}
	switch cmd {
	case "serve":
		return serveCmd(ctx, args)
	case "token":
		return tokenCmd(args)
	case "chat":
		return chatCmd(ctx, args)
	case "loadtest":
		return loadtestCmd(ctx, args)
	case "plan":
		return planCmd(args)
	case "migrate":
		if code := migrateCmd(args); code != 0 {
			os.Exit(code)
		}
		return nil
	case "tune":
		return tuneCmd(args)
	case "version":
		fmt.Println("switchboard", version)
		return nil
	case "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
