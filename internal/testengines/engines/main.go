// Command engines starts Redis, Kafka and Cassandra on loopback for
// trying the distributed deployment on one machine (scripts/cluster.sh),
// writes their addresses as shell variables to the file given by -env,
// and stops them on SIGINT or SIGTERM. `make deps` installs the servers.
//
//	go run ./internal/testengines/engines -env .cluster/engines.env
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard/switchboard/internal/testengines"
)

func main() {
	env := flag.String("env", "", "write REDIS, KAFKA and CASSANDRA (host:port) to this file once all are ready")
	keep := flag.Bool("keep", false, "keep the servers' data directories when stopping")
	flag.Parse()
	e, err := testengines.StartAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "engines:", err)
		os.Exit(1)
	}
	vars := fmt.Sprintf("REDIS=%s\nKAFKA=%s\nCASSANDRA=%s\n", e.Redis.Addr, e.Kafka.Bootstrap, e.Cassandra.Addr)
	fmt.Print(vars)
	if *env != "" {
		if err := os.WriteFile(*env, []byte(vars), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "engines:", err)
			e.Stop(false)
			os.Exit(1)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	e.Stop(*keep)
}
