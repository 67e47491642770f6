package testengines

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/redis/rueidis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func redisClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("rueidis to %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestRedis talks to the shared Redis with a real client: PING, SET, GET.
func TestRedis(t *testing.T) {
	r := Redis(t)
	c := redisClient(t, r.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := c.Do(ctx, c.B().Ping().Build()).ToString(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	if err := c.Do(ctx, c.B().Set().Key("testengines:k").Value("v1").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Do(ctx, c.B().Get().Key("testengines:k").Build()).ToString(); err != nil || got != "v1" {
		t.Fatalf("GET = %q, %v; want v1", got, err)
	}
	if Redis(t) != r {
		t.Fatal("a second Redis(t) started another server")
	}
}

// TestRedisRestart: a private Redis restarts on the same address, empty
// (no persistence), and its owner may crash it.
func TestRedisRestart(t *testing.T) {
	r := NewRedis(t)
	if r.Addr == Redis(t).Addr {
		t.Fatalf("private and shared Redis share %s", r.Addr)
	}
	c := redisClient(t, r.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if redisPing(r.Addr) == nil {
		t.Fatalf("%s answers after Stop", r.Addr)
	}
	r.Start(t)
	if err := c.Do(ctx, c.B().Get().Key("k").Build()).Error(); !rueidis.IsRedisNil(err) {
		t.Fatalf("GET after restart: %v, want nil (no persistence)", err)
	}
	r.Kill()
	r.Start(t)
	if err := redisPing(r.Addr); err != nil {
		t.Fatalf("PING after kill and start: %v", err)
	}
}

// TestStartFailureQuotesLog: a server that cannot start is an error that
// quotes its log, and its directory is left for the caller to keep.
func TestStartFailureQuotesLog(t *testing.T) {
	_, p, err := startRedis([]string{"--no-such-directive", "x"})
	if p == nil {
		t.Fatalf("no process made: %v", err)
	}
	defer p.finish(false)
	if err == nil {
		t.Fatal("redis-server started with an unknown directive")
	}
	if !strings.Contains(err.Error(), "no-such-directive") || !strings.Contains(err.Error(), p.LogPath()) {
		t.Fatalf("error does not quote the log or name it:\n%v", err)
	}
}

// TestKafka creates a topic with kadm, produces a record with acks=all and
// consumes it, on the shared Kafka.
func TestKafka(t *testing.T) {
	k := Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	topic := fmt.Sprintf("testengines-%d", time.Now().UnixNano())

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Bootstrap), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte("alice"), Value: []byte("hello")}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(k.Bootstrap), kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(topic+"-group"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record consumed: %v", err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		var got []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
		if len(got) == 0 {
			continue
		}
		if len(got) != 1 || string(got[0].Key) != "alice" || string(got[0].Value) != "hello" || got[0].Partition != rec.Partition {
			t.Fatalf("consumed %d records, first %q=%q on %d; want alice=hello on %d", len(got), got[0].Key, got[0].Value, got[0].Partition, rec.Partition)
		}
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit offsets: %v", err)
		}
		return
	}
}

// TestCassandra creates a keyspace and a table, inserts a row and reads it
// back, on the shared Cassandra.
func TestCassandra(t *testing.T) {
	c := Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster := gocql.NewCluster(c.Addr)
	cluster.Timeout = 20 * time.Second // schema changes on a busy 2-core box
	cluster.ConnectTimeout = 10 * time.Second
	s, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("connect to %s: %v", c.Addr, err)
	}
	defer s.Close()
	for _, stmt := range []string{
		`CREATE KEYSPACE IF NOT EXISTS testengines WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
		`CREATE TABLE IF NOT EXISTS testengines.messages (conv text, id bigint, body text, PRIMARY KEY (conv, id))`,
	} {
		if err := s.Query(stmt).ExecContext(ctx); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := s.Query(`INSERT INTO testengines.messages (conv, id, body) VALUES (?, ?, ?)`, "alice:bob", int64(1), "hello").
		Consistency(gocql.LocalQuorum).ExecContext(ctx); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var body string
	if err := s.Query(`SELECT body FROM testengines.messages WHERE conv = ? AND id = ?`, "alice:bob", int64(1)).
		Consistency(gocql.LocalQuorum).ScanContext(ctx, &body); err != nil || body != "hello" {
		t.Fatalf("select = %q, %v; want hello", body, err)
	}
}
