package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard/switchboard/client"
	"github.com/switchboard/switchboard/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// user is a client.Client on one gateway, its events collected.
type user struct {
	name string
	c    *client.Client
	mu   sync.Mutex
	evs  []client.Event
	stop context.CancelFunc
	done chan struct{}
}

// connect runs a client of name's device through url until the test
// ends, recording its events (and handing each to hook, if not nil).
func connect(t *testing.T, c *Cluster, url, name, device string, hook func(client.Event)) *user {
	t.Helper()
	return connectCfg(t, c, client.Config{URL: url}, name, device, hook)
}

// connectCfg is connect with more of the client's configuration (cfg's
// URL, AssetsURL).
func connectCfg(t *testing.T, c *Cluster, cfg client.Config, name, device string, hook func(client.Event)) *user {
	t.Helper()
	u := &user{name: name, done: make(chan struct{})}
	cl, err := client.New(client.Config{
		URL: cfg.URL, AssetsURL: cfg.AssetsURL, Token: c.Token(t, name, device),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Handler: func(ev client.Event) {
			u.mu.Lock()
			u.evs = append(u.evs, ev)
			u.mu.Unlock()
			if hook != nil {
				hook(ev)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	u.c = cl
	ctx, cancel := context.WithCancel(context.Background())
	u.stop = cancel
	go func() {
		defer close(u.done)
		cl.Run(ctx)
	}()
	t.Cleanup(u.close)
	waitFor(t, 30*time.Second, name+" connected", cl.Connected)
	return u
}

func (u *user) close() {
	u.stop()
	<-u.done
	u.c.Close()
}

// messages returns the messages received so far, own copies aside.
func (u *user) messages() []client.Message {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []client.Message
	for _, ev := range u.evs {
		if m, ok := ev.(client.Message); ok && !m.Own {
			out = append(out, m)
		}
	}
	return out
}

func eventsOf[E client.Event](u *user) []E {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []E
	for _, ev := range u.evs {
		if e, ok := ev.(E); ok {
			out = append(out, e)
		}
	}
	return out
}

// checkSeqs fails unless the inbox entries u received have the seqs 1,
// 2, … in order, without a gap or a repeat.
func checkSeqs(t *testing.T, u *user) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	var prev uint64
	for _, ev := range u.evs {
		var seq uint64
		switch e := ev.(type) {
		case client.Message:
			seq = e.Seq
		case client.GroupEvent:
			seq = e.Seq
		case client.Receipt:
			seq = e.Seq
		}
		if seq == 0 {
			continue
		}
		if seq != prev+1 {
			t.Fatalf("%s's inbox: seq %d follows %d (a gap or a repeat)", u.name, seq, prev)
		}
		prev = seq
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterEndToEnd runs three gateways and two workers on real Kafka,
// Redis and Cassandra: users on different gateways chat one to one and in
// a group, get receipts, sync what came while they were away (on another
// gateway), and a resent send is answered as the same message. It runs
// with one command partition (one worker sequences, the other stands by)
// and with four (both sequence, and forward entries to each other).
func TestClusterEndToEnd(t *testing.T) {
	for _, parts := range []int{1, 4} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			clusterEndToEnd(t, parts)
		})
	}
}

func clusterEndToEnd(t *testing.T, partitions int) {
	c := New(t, Engines{}, fmt.Sprintf("commands: {partitions: %d}\n", partitions))
	defer func() {
		if t.Failed() {
			t.Log(c.Logs())
		}
	}()
	c.StartWorker(t)
	c.StartWorker(t)
	g1, g2, g3 := c.StartGateway(t), c.StartGateway(t), c.StartGateway(t)

	alice := connect(t, c, g1.URL(), "alice", "phone", nil)
	bob := connect(t, c, g2.URL(), "bob", "phone", nil)
	carol := connect(t, c, g3.URL(), "carol", "phone", nil)
	ctx := context.Background()

	// One to one across gateways, with its ticks.
	id, err := alice.c.Send(ctx, "bob", "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "bob to get alice's message", func() bool { return len(bob.messages()) == 1 })
	m := bob.messages()[0]
	if m.From != "alice" || m.Body != "hi bob" || m.Seq != 1 {
		t.Fatalf("bob got %+v", m)
	}
	waitFor(t, 10*time.Second, "alice's ack", func() bool {
		for _, a := range eventsOf[client.Ack](alice) {
			if a.ClientID == id && a.MsgID == m.MsgID {
				return true
			}
		}
		return false
	})
	if err := bob.c.MarkRead(ctx, m.MsgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "alice to see bob's read receipt", func() bool {
		for _, r := range eventsOf[client.Receipt](alice) {
			if r.Status == client.StatusRead && r.By == "bob" && len(r.MsgIDs) == 1 && r.MsgIDs[0] == m.MsgID {
				return true
			}
		}
		return false
	})

	// A group across the three gateways.
	gid, err := alice.c.CreateGroup(ctx, "trip", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.SendGroup(ctx, gid, "to everyone"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*user{bob, carol} {
		waitFor(t, 20*time.Second, u.name+" to get the group message", func() bool {
			for _, m := range u.messages() {
				if m.Group == gid && m.Body == "to everyone" {
					return true
				}
			}
			return false
		})
	}

	// Offline sync, on another gateway: carol is away while alice sends.
	carol.close()
	for i := range 5 {
		if _, err := alice.c.Send(ctx, "carol", fmt.Sprintf("while away %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	carol2 := connect(t, c, g1.URL(), "carol", "phone", nil)
	waitFor(t, 20*time.Second, "carol to sync 5 messages", func() bool {
		n := 0
		for _, m := range carol2.messages() {
			if strings.HasPrefix(m.Body, "while away") {
				n++
			}
		}
		return n == 5
	})
	checkSeqs(t, carol2)

	// A resend of the same client id is the same message, stored once.
	raw := dialRaw(t, g3.Addr(), c.Token(t, "dave", "laptop"))
	send := map[string]any{"type": "send", "id": "resend-1", "to": "bob", "body": "once"}
	first := raw.request(t, send)
	second := raw.request(t, send)
	if first["msg_id"] == nil || first["msg_id"] != second["msg_id"] {
		t.Fatalf("resend: first ack %v, second %v: want the same msg_id", first, second)
	}
	// A duplicate would have been stored before this next message, in
	// bob's inbox order: once it is there, the count is final.
	raw.request(t, map[string]any{"type": "send", "id": "after-1", "to": "bob", "body": "after"})
	waitFor(t, 20*time.Second, "bob to get dave's second message", func() bool {
		for _, m := range bob.messages() {
			if m.From == "dave" && m.Body == "after" {
				return true
			}
		}
		return false
	})
	n := 0
	for _, m := range bob.messages() {
		if m.From == "dave" && m.Body == "once" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("bob got dave's resent message %d times, want 1", n)
	}

	// The request path's histograms counted the requests: on the gateways
	// (round trips) and on the sequencer's worker (wait, time in the core).
	var trips, waits, core float64
	for _, g := range c.Gateways {
		trips += metric(t, g, "switchboard_cluster_request_seconds_count")
	}
	for _, w := range c.Workers {
		waits += metric(t, w, "switchboard_cluster_command_wait_seconds_count")
		core += metric(t, w, "switchboard_cluster_command_seconds_count")
	}
	if trips < 5 || waits < trips || core < trips {
		t.Fatalf("request path histograms: %v round trips on the gateways, %v waits and %v core times on the workers; want at least 5, each stage at least the round trips", trips, waits, core)
	}
	if partitions > 1 {
		// Both workers sequence, and entries crossed partitions.
		var forwards float64
		for i, w := range c.Workers {
			if !strings.Contains(w.Log(), "sequencer started") {
				t.Fatalf("worker %d owns no command partition", i)
			}
			forwards += metric(t, w, "switchboard_forwards_applied_total")
		}
		if forwards == 0 {
			t.Fatal("no forward was applied: every user on one partition?")
		}
	}
}

// rawConn is a WebSocket client without the client package's resend and
// dedupe, to send exactly what a test says.
type rawConn struct{ c net.Conn }

func dialRaw(t *testing.T, addr, tok string) *rawConn {
	t.Helper()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + tok}}), Timeout: 5 * time.Second}
	c, _, _, err := d.Dial(context.Background(), "ws://"+addr+"/v1/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c}
}

// request sends v and returns the ack or error frame that answers its id.
func (r *rawConn) request(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	r.write(t, v)
	for {
		f := r.next(t)
		if (f["type"] == "ack" || f["type"] == "error") && f["id"] == v["id"] {
			return f
		}
	}
}

func (r *rawConn) write(t *testing.T, v map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := wsutil.WriteClientText(r.c, b); err != nil {
		t.Fatal(err)
	}
}

// next reads the next frame, within 20s.
func (r *rawConn) next(t *testing.T) map[string]any {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	data, err := wsutil.ReadServerText(r.c)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestClusterFileSharing: a file uploaded through one gateway's asset API
// and sent to a user on another gateway is downloaded through that one,
// byte for byte; the blobs are in the deployment's shared directory, the
// asset's record in Cassandra.
func TestClusterFileSharing(t *testing.T) {
	c := New(t, Engines{}, "")
	defer func() {
		if t.Failed() {
			t.Log(c.Logs())
		}
	}()
	c.StartWorker(t)
	g1, g2 := c.StartGateway(t), c.StartGateway(t)
	alice := connectCfg(t, c, client.Config{URL: g1.URL(), AssetsURL: g1.AssetsURL()}, "alice", "phone", nil)
	bob := connectCfg(t, c, client.Config{URL: g2.URL(), AssetsURL: g2.AssetsURL()}, "bob", "phone", nil)

	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	path := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, att, err := alice.c.SendFile(ctx, "bob", path, "the report")
	if err != nil {
		t.Fatalf("SendFile through gateway 1: %v", err)
	}
	var got client.Message
	waitFor(t, 20*time.Second, "bob to get alice's file", func() bool {
		for _, m := range bob.messages() {
			if m.From == "alice" && m.Attachment != nil {
				got = m
				return true
			}
		}
		return false
	})
	if got.Body != "the report" || got.Attachment.AssetID != att.AssetID || got.Attachment.Size != int64(len(data)) || got.Attachment.Name != "report.bin" {
		t.Fatalf("bob's message %+v (attachment %+v), want the caption and alice's asset %+v", got, got.Attachment, att)
	}
	var buf bytes.Buffer
	if err := bob.c.Download(ctx, got.Attachment.AssetID, &buf); err != nil {
		t.Fatalf("Download through gateway 2: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("downloaded %d bytes, not the %d uploaded", buf.Len(), len(data))
	}
	// Someone the file was not sent to may not read it.
	carol := connectCfg(t, c, client.Config{URL: g2.URL(), AssetsURL: g2.AssetsURL()}, "carol", "phone", nil)
	if err := carol.c.Download(ctx, att.AssetID, io.Discard); err == nil {
		t.Fatal("carol downloaded a file nobody sent her")
	}
}

// nodeOf reads a process's node id from its log.
func nodeOf(t *testing.T, s *testserver.Server) string {
	t.Helper()
	m := regexp.MustCompile(`node=(\S+)`).FindStringSubmatch(s.Log())
	if m == nil {
		t.Fatalf("no node id in the log of %s", s.Addr())
	}
	return m[1]
}

// TestNodeTopicsCollected: the delivery topic of a gateway killed with -9
// is deleted by the worker once its heartbeat has been missing for
// kafka.node_topic_grace; a live gateway's and the worker's own stay; a
// gateway that stops cleanly deletes its own at once.
func TestNodeTopicsCollected(t *testing.T) {
	c := New(t, Engines{}, "")
	defer func() {
		if t.Failed() {
			t.Log(c.Logs())
		}
	}()
	c.Env = []string{"SWITCHBOARD_KAFKA_NODE_TOPIC_GRACE=2s"}
	w := c.StartWorker(t)
	dead, live, stopped := c.StartGateway(t), c.StartGateway(t), c.StartGateway(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Kafka.Bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := func() map[string]bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		td, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for name := range td {
			if rest, ok := strings.CutPrefix(name, c.Name+".node."); ok {
				out[rest] = true
			}
		}
		return out
	}
	nodes := map[string]string{"dead": nodeOf(t, dead), "live": nodeOf(t, live), "stopped": nodeOf(t, stopped), "worker": nodeOf(t, w)}
	for what, n := range nodes {
		if !topics()[n] {
			t.Fatalf("the %s node %s has no topic (topics %v)", what, n, topics())
		}
	}
	if err := stopped.Stop(); err != nil {
		t.Fatal(err)
	}
	// Kafka deletes a topic asynchronously: the metadata follows.
	waitFor(t, 10*time.Second, "the cleanly stopped gateway's topic to be deleted", func() bool { return !topics()[nodes["stopped"]] })
	dead.Kill()
	killed := time.Now()
	// Liveness expires 3 heartbeats (3 s) after the last, then 2 s of
	// grace, checked every 0.5 s.
	waitFor(t, 20*time.Second, "the killed gateway's topic to be deleted", func() bool { return !topics()[nodes["dead"]] })
	t.Logf("the killed gateway's topic was deleted %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	got := topics()
	if !got[nodes["live"]] || !got[nodes["worker"]] {
		t.Fatalf("live nodes' topics deleted: %v, want %s and %s", got, nodes["live"], nodes["worker"])
	}
	if d := time.Since(killed); d < 3500*time.Millisecond {
		t.Fatalf("the topic was deleted %v after the kill, before its liveness could expire and the grace pass", d)
	}
}

// TestClusterPrivacyAcrossGateways: bob, on gateway 1, hides his presence;
// alice, on gateway 2, who watches him, stops seeing it at once (gateway
// 2 learns of the change from the presence stream, not at its next load),
// and his later activity does not reach her.
func TestClusterPrivacyAcrossGateways(t *testing.T) {
	c := New(t, Engines{}, "")
	defer func() {
		if t.Failed() {
			t.Log(c.Logs())
		}
	}()
	c.StartWorker(t)
	g1, g2 := c.StartGateway(t), c.StartGateway(t)
	bob := connect(t, c, g1.URL(), "bob", "phone", nil)
	alice := connect(t, c, g2.URL(), "alice", "phone", nil)
	ctx := context.Background()
	if err := bob.c.SetActive(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Subscribe(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "alice to see bob online", func() bool {
		ps := eventsOf[client.Presence](alice)
		return len(ps) > 0 && ps[len(ps)-1].Online != nil && *ps[len(ps)-1].Online
	})
	if _, err := bob.c.SetPrivacy(ctx, client.Privacy{LastSeen: client.VisibleNobody, Online: client.VisibleNobody}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "alice's view of bob to be hidden", func() bool {
		ps := eventsOf[client.Presence](alice)
		last := ps[len(ps)-1]
		return last.Online == nil && last.LastSeen == nil
	})
	seen := len(eventsOf[client.Presence](alice))
	if err := bob.c.SetActive(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := bob.c.SetActive(ctx, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for _, p := range eventsOf[client.Presence](alice)[seen:] {
		if p.User == "bob" && (p.Online != nil || p.LastSeen != nil) {
			t.Fatalf("alice was shown bob's presence after he hid it: %s", p.Raw)
		}
	}
}
