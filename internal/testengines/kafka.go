package testengines

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const (
	kafkaReady = 2 * time.Minute
	kafkaStop  = 30 * time.Second
	// kafkaHeap is the broker's heap (-Xms and -Xmx).
	kafkaHeap = "512m"
)

// KafkaServer is one Kafka node in KRaft mode, broker and controller in
// one process, with every replication factor 1.
type KafkaServer struct {
	*Process
	// Bootstrap is the broker's host:port (the PLAINTEXT listener).
	Bootstrap string
	// ClusterID is the id its storage was formatted with.
	ClusterID string
}

var sharedKafka lazy[*KafkaServer]

// Kafka returns the test package's shared Kafka, started on first use.
func Kafka(t testing.TB) *KafkaServer {
	t.Helper()
	return sharedKafka.get(t, startKafka)
}

// NewKafka starts a Kafka that the test owns. It is stopped when the test
// ends.
func NewKafka(t testing.TB) *KafkaServer {
	t.Helper()
	return own(t, startKafka)
}

// kafkaProperties is server.properties; the arguments are the broker's and
// the controller's ports, twice the controller's, and the log directory.
const kafkaProperties = `process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:%[2]d
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=%[3]s
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`

// kafkaLog4j sends Kafka's log to stdout (the process's log file), without
// the configuration dumps.
const kafkaLog4j = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
`

func startKafka() (*KafkaServer, *Process, error) {
	lib, err := cacheLib("kafka", "kafka_2.13-*.jar")
	if err != nil {
		return nil, nil, err
	}
	java, err := javaPath()
	if err != nil {
		return nil, nil, err
	}
	p, err := newProcess("kafka", kafkaReady, kafkaStop)
	if err != nil {
		return nil, nil, err
	}
	p.ready = logSays("Kafka Server started")
	k := &KafkaServer{Process: p}
	props := filepath.Join(p.dir, "server.properties")
	jvm := []string{java, "-Xms" + kafkaHeap, "-Xmx" + kafkaHeap, "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(p.dir, "log4j2.properties"),
		"-cp", filepath.Join(lib, "*")}
	err = launch(p, func(p *Process) error {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		k.Bootstrap = fmt.Sprintf("127.0.0.1:%d", ports[0])
		data := filepath.Join(p.dir, "data")
		if err := os.RemoveAll(data); err != nil { // a failed attempt's
			return err
		}
		if err := os.WriteFile(props, fmt.Appendf(nil, kafkaProperties, ports[0], ports[1], data), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(p.dir, "log4j2.properties"), []byte(kafkaLog4j), 0o644); err != nil {
			return err
		}
		var id [16]byte
		rand.Read(id[:])
		k.ClusterID = base64.RawURLEncoding.EncodeToString(id[:])
		format := exec.Command(jvm[0], slices.Concat(jvm[1:], []string{"kafka.tools.StorageTool", "format", "--standalone",
			// "=": an id that starts with '-' (one in 64 does) would
			// otherwise be taken for an option.
			"--cluster-id=" + k.ClusterID, "-c", props})...)
		if out, err := format.CombinedOutput(); err != nil {
			return fmt.Errorf("kafka storage format: %v: %s", err, out)
		}
		p.argv = slices.Concat(jvm, []string{"kafka.Kafka", props})
		return nil
	})
	return k, p, err
}
