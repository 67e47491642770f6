package clustertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/switchboard/switchboard/internal/testengines"
	"github.com/switchboard/switchboard/internal/testserver"
)

// alive returns the addresses of the gateways still running.
func (c *Cluster) alive() []string {
	var out []string
	for _, g := range c.Gateways {
		select {
		case <-g.Done():
		default:
			out = append(out, g.Addr())
		}
	}
	return out
}

// sequencer returns the worker that runs the sequencer now (the last to
// log that it started one, among those alive).
func (c *Cluster) sequencer(t *testing.T) *testserver.Server {
	t.Helper()
	var owner *testserver.Server
	waitFor(t, 30*time.Second, "a worker to own the command log", func() bool {
		for _, w := range c.Workers {
			select {
			case <-w.Done():
				continue
			default:
			}
			log := w.Log()
			if i := strings.LastIndex(log, "sequencer started"); i >= 0 && strings.LastIndex(log, "sequencer stopped") < i {
				owner = w
				return true
			}
		}
		return false
	})
	return owner
}

// metric returns the sum of the samples of a Prometheus metric whose line
// starts with name (labels included in name if given) on s's /metrics.
func metric(t *testing.T, s *testserver.Server, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func startCluster(t *testing.T, e Engines, extra string, gateways, workers int) (*Cluster, *Balancer) {
	t.Helper()
	c := New(t, e, extra)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Logs())
		}
	})
	for range workers {
		c.StartWorker(t)
	}
	for range gateways {
		c.StartGateway(t)
	}
	return c, NewBalancer(t, c.alive)
}

// TestFaultGatewayKilled: kill -9 of a gateway during a burst; its
// clients reconnect through the balancer to the others and resume.
func TestFaultGatewayKilled(t *testing.T) {
	c, lb := startCluster(t, Engines{}, "", 3, 2)
	tr := newTraffic(t, c, lb.URL(), 6)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.send(t, 40, 25*time.Millisecond)
	}()
	time.Sleep(400 * time.Millisecond) // mid-burst
	c.Gateways[0].Kill()
	<-done
	tr.verify(t)
}

// TestFaultWorkerKilledBeforeCommit: kill -9 of the worker running the
// sequencer after its store writes and before its offset commit (commits
// are held back for the whole test), so its successor applies every
// command again: each is recognised as done (a duplicate), nothing is
// stored twice, no seq is skipped.
func TestFaultWorkerKilledBeforeCommit(t *testing.T) {
	c, lb := startCluster(t, Engines{}, "commands: {commit_interval: 1h}\n", 2, 2)
	tr := newTraffic(t, c, lb.URL(), 4)
	tr.send(t, 20, 10*time.Millisecond)
	tr.ackedAll(t, 60*time.Second)
	owner := c.sequencer(t)
	owner.Kill()
	// More traffic while the standby takes over (Kafka's session timeout).
	tr.send(t, 10, 10*time.Millisecond)
	next := c.sequencer(t)
	if next == owner {
		t.Fatal("the killed worker still owns the sequencer")
	}
	tr.verify(t)
	// Every command before the kill was applied again by the successor
	// and answered as a duplicate.
	if d := metric(t, next, "switchboard_messages_duplicate_total"); d < 80 {
		t.Fatalf("the successor counted %v duplicate sends, want at least the 80 the killed worker had applied", d)
	}
}

// TestFaultKafkaRestart: the broker stops during a burst and comes back:
// no send is acked while it is down (nothing can be durable), the
// gateways' waiting requests stay bounded, and everything flows after.
//
// With four command partitions it also covers the relays: forwards that
// Kafka refused while down are sent again once it is back.
func TestFaultKafkaRestart(t *testing.T) {
	for _, parts := range []int{1, 4} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) { faultKafkaRestart(t, parts) })
	}
}

func faultKafkaRestart(t *testing.T, partitions int) {
	k := testengines.NewKafka(t)
	c, lb := startCluster(t, Engines{Kafka: k}, fmt.Sprintf("cluster: {max_pending: 64, reply_timeout: 3s}\ncommands: {partitions: %d}\n", partitions), 2, 2)
	tr := newTraffic(t, c, lb.URL(), 4)
	tr.send(t, 10, 10*time.Millisecond)
	tr.ackedAll(t, 60*time.Second)

	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	tr.send(t, 20, 20*time.Millisecond)
	for _, g := range c.Gateways {
		if p := metric(t, g, "switchboard_cluster_pending_requests"); p > 64 {
			t.Fatalf("a gateway holds %v requests with Kafka down, past max_pending 64", p)
		}
	}
	k.Start(t)
	up := time.Now()
	tr.verify(t)
	// No false ack: a message first sent after Kafka stopped was acked
	// only after it was back.
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, p := range tr.pairs {
		for _, s := range p.sent {
			if s.at.After(down) {
				if a := tr.acks[s.clientID]; a.at.Before(up) {
					t.Errorf("%q sent at +%v with Kafka down was acked at +%v, before Kafka was back at +%v",
						s.body, s.at.Sub(down), a.at.Sub(down), up.Sub(down))
				}
			}
		}
	}
}

// TestFaultRedisRestart: Redis restarts empty (no persistence): every
// gateway's routes are back within about one heartbeat, and messages are
// delivered live again.
func TestFaultRedisRestart(t *testing.T) {
	r := testengines.NewRedis(t)
	c, lb := startCluster(t, Engines{Redis: r}, "", 2, 1) // heartbeat_interval: the default 1s
	tr := newTraffic(t, c, lb.URL(), 4)
	tr.send(t, 5, 10*time.Millisecond)
	tr.ackedAll(t, 60*time.Second)

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	r.Start(t)
	up := time.Now()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Every user's routes hash is back (one per connected user).
	waitFor(t, 10*time.Second, "the routes to be rebuilt", func() bool {
		keys, err := rc.Do(context.Background(), rc.B().Keys().Pattern(c.Name+":rt:*").Build()).AsStrSlice()
		return err == nil && len(keys) >= 2*len(tr.pairs)
	})
	rebuilt := time.Since(up)
	t.Logf("routes rebuilt %v after Redis answered again (heartbeat 1s)", rebuilt.Round(time.Millisecond))
	if rebuilt > 3*time.Second {
		t.Errorf("routes rebuilt after %v, want within about one heartbeat interval (1s)", rebuilt)
	}
	tr.send(t, 5, 10*time.Millisecond)
	tr.verify(t)
}

// TestFaultPartitionedWorkerKilled: four command partitions shared by two
// workers, so that each sequences some users and forwards entries to the
// other's. One is killed -9 with its offsets uncommitted (commits are
// held back): the other takes its partitions over, applies their
// commands again (duplicates), and its relay sends their outboxes again
// (forwards dropped as duplicates): every acked message stored once and
// delivered, every inbox gap-free.
func TestFaultPartitionedWorkerKilled(t *testing.T) {
	c, lb := startCluster(t, Engines{}, "commands: {partitions: 4, commit_interval: 1h}\n", 2, 2)
	waitFor(t, 60*time.Second, "both workers to own command partitions", func() bool {
		return strings.Contains(c.Workers[0].Log(), "sequencer started") && strings.Contains(c.Workers[1].Log(), "sequencer started")
	})
	tr := newTraffic(t, c, lb.URL(), 8)
	tr.send(t, 20, 10*time.Millisecond)
	tr.ackedAll(t, 60*time.Second)
	if f := metric(t, c.Workers[0], "switchboard_forwards_applied_total") + metric(t, c.Workers[1], "switchboard_forwards_applied_total"); f == 0 {
		t.Fatal("no forward was applied before the kill")
	}
	c.Workers[0].Kill()
	tr.send(t, 10, 10*time.Millisecond)
	tr.verify(t)
	survivor := c.Workers[1]
	if n := strings.Count(survivor.Log(), "sequencer started"); n < 3 {
		t.Fatalf("the survivor started %d sequencers, want its own and the killed worker's", n)
	}
	if d := metric(t, survivor, "switchboard_messages_duplicate_total"); d == 0 {
		t.Fatal("the survivor applied no command again: were the killed worker's offsets committed?")
	}
	t.Logf("the survivor dropped %v forwards as duplicates", metric(t, survivor, "switchboard_forwards_duplicate_total"))
}
