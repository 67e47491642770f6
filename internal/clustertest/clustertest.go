// Package clustertest runs a whole distributed deployment for end-to-end
// and fault tests: the real Redis, Kafka and Cassandra of
// internal/testengines, the schema applied by `switchboard migrate`, and
// gateway and worker processes of the switchboard binary
// (internal/testserver), all on loopback, each cluster in its own
// keyspace, topic prefix and key prefix so that tests can share engines.
//
//	func TestMain(m *testing.M) { os.Exit(clustertest.Main(m)) }
//
//	c := clustertest.New(t, clustertest.Engines{})  // shared engines
//	c.StartWorker(t); gw := c.StartGateway(t)
//	tok := c.Token(t, "alice", "phone")
package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testengines"
	"github.com/switchboard/switchboard/internal/testserver"
)

// Main runs the tests, then stops the shared engines and removes the
// binary. Call it from TestMain.
func Main(m *testing.M) int {
	return testserver.Main(runner(func() int { return testengines.Run(m) }))
}

type runner func() int

func (r runner) Run() int { return r() }

// Engines are the servers a cluster uses; a nil one is the test
// package's shared server of that kind. Fault tests pass their own
// (testengines.NewKafka and friends) to stop and restart them.
type Engines struct {
	Redis     *testengines.RedisServer
	Kafka     *testengines.KafkaServer
	Cassandra *testengines.CassandraServer
}

// Cluster is one deployment: its configuration file and the processes
// started so far.
type Cluster struct {
	Engines
	Name     string // keyspace, topic prefix and key prefix
	Config   string // the YAML file every process reads
	SecretIn string // the data directory holding the shared token secret
	Extra    string // more YAML appended to Config by New's caller (before starting processes)
	// DataDir is every process's data directory: in a distributed
	// deployment it holds only the blobs (blobs.backend dir) and
	// unfinished uploads, so sharing it is the "shared file system" of
	// docs/deploy.md, and a file uploaded through one gateway can be
	// downloaded through another.
	DataDir string
	// Env is more KEY=VALUE environment for the processes started next
	// (SWITCHBOARD_* settings that the shared YAML does not hold).
	Env []string

	Gateways []*testserver.Server
	Workers  []*testserver.Server
}

var clusters atomic.Int64

// New starts the engines that e leaves nil (shared), writes the cluster's
// configuration with extra YAML appended, and applies the schema with
// `switchboard migrate`. It starts no process.
func New(t testing.TB, e Engines, extra string) *Cluster {
	t.Helper()
	if e.Redis == nil {
		e.Redis = testengines.Redis(t)
	}
	if e.Kafka == nil {
		e.Kafka = testengines.Kafka(t)
	}
	if e.Cassandra == nil {
		e.Cassandra = testengines.Cassandra(t)
	}
	c := &Cluster{Engines: e, Name: fmt.Sprintf("c%d_%d", os.Getpid(), clusters.Add(1)), SecretIn: t.TempDir(), DataDir: t.TempDir()}
	// The secret is created by the first Token call or process; all
	// read the same file.
	testserver.Token(t, c.SecretIn, "init", "")
	dir := t.TempDir()
	c.Config = filepath.Join(dir, "switchboard.yaml")
	yaml := fmt.Sprintf(`secret_file: %s
backends: {store: cassandra, bus: kafka, router: redis}
cassandra: {hosts: [%q], keyspace: %s, replication: "1"}
kafka: {brokers: [%q], topic_prefix: %s., replication_factor: 1, min_insync_replicas: 1}
redis: {addrs: [%q], key_prefix: "%s:"}
assets: {listen: "off"}
%s`, filepath.Join(c.SecretIn, "secret.key"), e.Cassandra.Addr, c.Name, e.Kafka.Bootstrap, c.Name, e.Redis.Addr, c.Name, extra)
	if err := os.WriteFile(c.Config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testserver.Binary(t), "migrate", "--hosts", e.Cassandra.Addr, "--keyspace", c.Name, "--replication", "1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("switchboard migrate: %v\n%s", err, out)
	}
	return c
}

// StartGateway starts a gateway process and returns once it is ready.
func (c *Cluster) StartGateway(t testing.TB, args ...string) *testserver.Server {
	t.Helper()
	s := testserver.Start(t, testserver.Options{DataDir: c.DataDir, Env: c.Env, Args: append([]string{"--role", "gateway", "--config", c.Config}, args...)})
	c.Gateways = append(c.Gateways, s)
	return s
}

// StartWorker starts a worker process and returns once it is ready.
func (c *Cluster) StartWorker(t testing.TB, args ...string) *testserver.Server {
	t.Helper()
	s := testserver.Start(t, testserver.Options{DataDir: c.DataDir, Env: c.Env, Args: append([]string{"--role", "worker", "--config", c.Config}, args...)})
	c.Workers = append(c.Workers, s)
	return s
}

// Token mints a token for user and device with the cluster's secret.
func (c *Cluster) Token(t testing.TB, user, device string) string {
	t.Helper()
	return testserver.Token(t, c.SecretIn, user, device)
}

// Logs returns every process's log, for a failing test to print.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for i, s := range c.Workers {
		fmt.Fprintf(&b, "--- worker %d (%s)\n%s\n", i, s.Addr(), s.Log())
	}
	for i, s := range c.Gateways {
		fmt.Fprintf(&b, "--- gateway %d (%s)\n%s\n", i, s.Addr(), s.Log())
	}
	return b.String()
}
