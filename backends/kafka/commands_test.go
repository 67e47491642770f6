package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard/switchboard/internal/testengines"
)

func commandsConfig(brokers string) (Config, CommandsConfig) {
	var id [4]byte
	rand.Read(id[:])
	return Config{Brokers: []string{brokers}, TopicPrefix: "c" + hex.EncodeToString(id[:]) + ".", ReplicationFactor: 1, Logger: quiet},
		CommandsConfig{CommitInterval: 20 * time.Millisecond}
}

// recorder is a Partition that records the commands handed to it; it
// completes them at once, or never past a limit.
type recorder struct {
	mu     sync.Mutex
	got    []string
	badAt  []time.Time // append times not within the last minute
	hold   int         // complete only the first hold commands (0: all)
	closed bool
	notify chan struct{}
}

func (r *recorder) Handle(_ context.Context, value []byte, at time.Time, done func()) error {
	r.mu.Lock()
	if d := time.Since(at); d < 0 || d > time.Minute {
		r.badAt = append(r.badAt, at)
	}
	r.got = append(r.got, string(value))
	held := r.hold > 0 && len(r.got) > r.hold
	r.mu.Unlock()
	if !held {
		done()
	}
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *recorder) waitLen(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if v := r.values(); len(v) >= n {
			return v
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("handled %d commands, want %d", len(r.values()), n)
		}
	}
}

// runWorker runs ConsumeCommands with rec as the partition it claims and
// returns what stops it (and waits).
func runWorker(t *testing.T, cfg Config, cc CommandsConfig, rec *recorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ConsumeCommands(ctx, cfg, cc, func(context.Context, int32) (Partition, error) { return rec, nil })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ConsumeCommands: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func appendAll(t *testing.T, c *Commands, from, to int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, to-from)
	for i := from; i < to; i++ {
		wg.Add(1)
		if err := c.Append(0, []byte(fmt.Sprint(i)), func(err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func newCommands(t *testing.T, cfg Config, cc CommandsConfig) *Commands {
	t.Helper()
	c, err := NewCommands(context.Background(), cfg, cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestCommandsInOrderAndHandedOver: commands arrive in order; a worker
// that stops cleanly commits past what it completed, and the next one
// starts right after, with nothing skipped or repeated.
func TestCommandsInOrderAndHandedOver(t *testing.T) {
	k := testengines.Kafka(t)
	cfg, cc := commandsConfig(k.Bootstrap)
	c := newCommands(t, cfg, cc)
	appendAll(t, c, 0, 50)

	first := &recorder{notify: make(chan struct{}, 1)}
	stop := runWorker(t, cfg, cc, first)
	got := first.waitLen(t, 50)
	stop()
	if !first.closed {
		t.Fatal("the partition was not closed at the handover")
	}
	appendAll(t, c, 50, 80)
	second := &recorder{notify: make(chan struct{}, 1)}
	runWorker(t, cfg, cc, second)
	got = append(got, second.waitLen(t, 30)...)
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("command %d is %q: want every command once, in order (got %v)", i, v, got)
		}
	}
	for _, r := range []*recorder{first, second} {
		if len(r.badAt) > 0 {
			t.Fatalf("commands handed over with append times %v: want their records' timestamps, within the last minute", r.badAt)
		}
	}
}

// TestCommandsUncompletedAreRedelivered: a worker stops while commands
// it was handed have not completed (their writes not durable): the next
// worker is handed them again, from the first one not completed.
func TestCommandsUncompletedAreRedelivered(t *testing.T) {
	k := testengines.Kafka(t)
	cfg, cc := commandsConfig(k.Bootstrap)
	c := newCommands(t, cfg, cc)
	appendAll(t, c, 0, 20)

	first := &recorder{notify: make(chan struct{}, 1), hold: 12}
	stop := runWorker(t, cfg, cc, first)
	first.waitLen(t, 20)
	stop()
	second := &recorder{notify: make(chan struct{}, 1)}
	runWorker(t, cfg, cc, second)
	got := second.waitLen(t, 8)
	if got[0] != "12" || got[len(got)-1] != "19" || len(got) != 8 {
		t.Fatalf("the next worker was handed %v, want 12…19 (the commands not completed)", got)
	}
}

// TestCommandsKafkaDown: with the broker down an append never reports
// success (the gateway's reply timeout answers the client "overloaded":
// cluster.Remote), its buffer is bounded, and once the broker is back the
// waiting append resolves and new ones succeed.
func TestCommandsKafkaDown(t *testing.T) {
	k := testengines.NewKafka(t)
	cfg, cc := commandsConfig(k.Bootstrap)
	cfg.MaxBufferedRecords = 4
	cc.DeliveryTimeout = time.Second
	c := newCommands(t, cfg, cc)
	appendAll(t, c, 0, 1)
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	during := make(chan error, 4)
	for i := range 4 {
		if err := c.Append(0, []byte(fmt.Sprint("during", i)), func(err error) { during <- err }); err != nil {
			t.Fatal(err)
		}
	}
	over := make(chan error, 1)
	if err := c.Append(0, []byte("over"), func(err error) { over <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-over:
		if !errors.Is(err, kgo.ErrMaxBuffered) {
			t.Fatalf("an append past max_buffered_records: %v, want ErrMaxBuffered", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an append past max_buffered_records was not refused at once")
	}
	resolved := 0
	select {
	case err := <-during:
		if err == nil {
			t.Fatal("an append succeeded with the broker down")
		}
		resolved++
	case <-time.After(3 * time.Second):
	}
	k.Start(t)
	deadline := time.After(60 * time.Second)
	for ; resolved < 4; resolved++ {
		select {
		case <-during:
		case <-deadline:
			t.Fatal("appends made during the outage still unresolved 60s after the broker came back")
		}
	}
	for {
		res := make(chan error, 1)
		if err := c.Append(0, []byte("after"), func(err error) { res <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-res; err == nil {
			break
		}
		select {
		case <-deadline:
			t.Fatal("appends still fail 60s after the broker came back")
		default:
		}
	}
}

// TestCommandsSecondWorkerStandsBy: a worker joining the group while
// another owns the partition does not stop the commands: the group's
// rebalance revokes nothing from the owner (or hands the partition over
// cleanly), and every command is handled once.
func TestCommandsSecondWorkerStandsBy(t *testing.T) {
	k := testengines.Kafka(t)
	cfg, cc := commandsConfig(k.Bootstrap)
	c := newCommands(t, cfg, cc)
	a := &recorder{notify: make(chan struct{}, 1)}
	runWorker(t, cfg, cc, a)
	appendAll(t, c, 0, 10)
	a.waitLen(t, 10)
	b := &recorder{notify: make(chan struct{}, 1)}
	runWorker(t, cfg, cc, b)
	// Appends keep flowing through the join and after it.
	for i := 10; i < 60; i += 10 {
		appendAll(t, c, i, i+10)
		time.Sleep(100 * time.Millisecond) // spread over the rebalance
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(a.values())+len(b.values()) < 60 {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d+%d commands 30s after the second worker joined, want 60", len(a.values()), len(b.values()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, v := range append(a.values(), b.values()...) {
		seen[v]++
	}
	for i := range 60 {
		if seen[fmt.Sprint(i)] != 1 {
			t.Fatalf("command %d handled %d times", i, seen[fmt.Sprint(i)])
		}
	}
}

// A command topic of several partitions: each append goes to the
// partition it names and reaches that partition's claim, in order; a
// process counting the partitions differently refuses to start.
func TestCommandPartitions(t *testing.T) {
	k := testengines.Kafka(t)
	cfg, cc := commandsConfig(k.Bootstrap)
	cc.Partitions = 3
	c := newCommands(t, cfg, cc)
	if c.Partitions() != 3 {
		t.Fatalf("Partitions() = %d", c.Partitions())
	}
	recs := make([]*recorder, 3)
	for i := range recs {
		recs[i] = &recorder{notify: make(chan struct{}, 1)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ConsumeCommands(ctx, cfg, cc, func(_ context.Context, p int32) (Partition, error) { return recs[p], nil })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ConsumeCommands: %v", err)
		}
	}()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		if err := c.Append(i%3, []byte(fmt.Sprint(i)), func(err error) {
			if err != nil {
				t.Errorf("append %d to partition %d: %v", i, i%3, err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for p, r := range recs {
		got := r.waitLen(t, 10)
		for j, v := range got {
			if v != fmt.Sprint(p+3*j) {
				t.Fatalf("partition %d got %q", p, got)
			}
		}
	}
	if err := c.Append(3, []byte("x"), func(error) {}); err == nil {
		t.Fatal("Append to partition 3 of 3 did not fail")
	}
	cc.Partitions = 2
	if _, err := NewCommands(context.Background(), cfg, cc); err == nil || !strings.Contains(err.Error(), "fixed when the topic is created") {
		t.Fatalf("NewCommands with 2 partitions on a topic of 3: %v", err)
	}
}
