package testengines

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const (
	cassandraReady = 4 * time.Minute
	cassandraStop  = 60 * time.Second
)

// CassandraServer is a single Cassandra node: one token, SimpleSnitch,
// small thread pools, a 1 GiB heap, no JMX; the batch warning thresholds
// raised past what Apply sends (a warning logged per batch costs the
// server CPU, and one node gains from multi-partition batches:
// cassandra.batch_entries).
type CassandraServer struct {
	*Process
	// Addr is the CQL (native transport) host:port.
	Addr string
	// Port is Addr's port.
	Port int
}

var sharedCassandra lazy[*CassandraServer]

// Cassandra returns the test package's shared Cassandra, started on first
// use.
func Cassandra(t testing.TB) *CassandraServer {
	t.Helper()
	return sharedCassandra.get(t, startCassandra)
}

// NewCassandra starts a Cassandra that the test owns. It is stopped when
// the test ends.
func NewCassandra(t testing.TB) *CassandraServer {
	t.Helper()
	return own(t, startCassandra)
}

// cassandraYAML is cassandra.yaml; the arguments are the CQL port, the
// storage (gossip) port and the directory for data.
const cassandraYAML = `cluster_name: switchboard-test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:%[2]d"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: %[2]d
native_transport_port: %[1]d
start_native_transport: true
commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories: [%[3]s/data]
commitlog_directory: %[3]s/commitlog
saved_caches_directory: %[3]s/saved_caches
hints_directory: %[3]s/hints
cdc_raw_directory: %[3]s/cdc_raw
concurrent_reads: 4
concurrent_writes: 4
concurrent_counter_writes: 2
concurrent_materialized_view_writes: 2
concurrent_compactors: 1
memtable_flush_writers: 1
auto_snapshot: false
batch_size_warn_threshold: 48KiB
unlogged_batch_across_partitions_warn_threshold: 100000
`

// cassandraLogback sends Cassandra's log to stdout (the process's log
// file).
const cassandraLogback = `<configuration>
  <appender name="out" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="out"/></root>
</configuration>
`

// cassandraJVM are the JVM options of Cassandra 5.0's conf/jvm17-server.options
// (G1 and the module exports and opens that Java 17 needs), and a few of
// jvm-server.options.
var cassandraJVM = []string{
	"-Xms512m", "-Xmx1g", "-Xss256k",
	"-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1", "-XX:G1HeapRegionSize=16m",
	"-XX:G1RSetUpdatingPauseTimePercent=5", "-XX:MaxGCPauseMillis=300", "-XX:InitiatingHeapOccupancyPercent=70",
	"-XX:+ExitOnOutOfMemoryError", "-XX:+PerfDisableSharedMem",
	"-Djava.net.preferIPv4Stack=true", "-Djava.awt.headless=true",
	"-Djdk.attach.allowAttachSelf=true",
	"--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
	"--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
	"--add-exports", "java.sql/java.sql=ALL-UNNAMED",
	"--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
	"--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
	"--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
	"--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
	"--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
	"--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-opens", "java.base/java.io=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
	"--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang=ALL-UNNAMED",
	"--add-opens", "java.base/java.util=ALL-UNNAMED",
	"-Dio.netty.tryReflectionSetAccessible=true",
	"-Dio.netty.allocator.useCacheForAllThreads=true",
	"-Dio.netty.allocator.maxOrder=11",
}

func startCassandra() (*CassandraServer, *Process, error) {
	lib, err := cacheLib("cassandra", "cassandra-all-*.jar")
	if err != nil {
		return nil, nil, err
	}
	jamm, _ := filepath.Glob(filepath.Join(lib, "jamm-*.jar"))
	if len(jamm) != 1 {
		return nil, nil, fmt.Errorf("cassandra: want one jamm jar in %s, found %v: run `make deps`", lib, jamm)
	}
	java, err := javaPath()
	if err != nil {
		return nil, nil, err
	}
	p, err := newProcess("cassandra", cassandraReady, cassandraStop)
	if err != nil {
		return nil, nil, err
	}
	p.ready = logSays("Startup complete")
	c := &CassandraServer{Process: p}
	yaml := filepath.Join(p.dir, "cassandra.yaml")
	logback := filepath.Join(p.dir, "logback.xml")
	data := filepath.Join(p.dir, "data")
	p.argv = slices.Concat([]string{java}, cassandraJVM, []string{
		"-javaagent:" + jamm[0],
		"-Dcassandra.config=file://" + yaml,
		"-Dcassandra-foreground=yes",
		"-Dcassandra.storagedir=" + data,
		"-Dcassandra.skip_wait_for_gossip_to_settle=0",
		"-Dlogback.configurationFile=file://" + logback,
		"-cp", filepath.Join(lib, "*"),
		"org.apache.cassandra.service.CassandraDaemon",
	})
	err = launch(p, func(p *Process) error {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		c.Port = ports[0]
		c.Addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		if err := os.RemoveAll(data); err != nil { // a failed attempt's
			return err
		}
		if err := os.WriteFile(yaml, fmt.Appendf(nil, cassandraYAML, ports[0], ports[1], data), 0o644); err != nil {
			return err
		}
		return os.WriteFile(logback, []byte(cassandraLogback), 0o644)
	})
	return c, p, err
}
