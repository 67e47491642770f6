package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard/switchboard/backends/memory"
	redisdir "github.com/switchboard/switchboard/backends/redis"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/internal/testengines"
	"github.com/switchboard/switchboard/internal/testserver"
	"github.com/switchboard/switchboard/router"
)

func TestMain(m *testing.M) { os.Exit(testengines.Run(m)) }

// cluster is one box with several gateways: each its own node id, all
// sharing one routing directory (on a real Redis, or in memory), one
// in-process Bus and one chat Service on the memory store.
type cluster struct {
	dir   router.Directory
	redis *redisdir.Directory // dir, when on Redis
	bus   *memory.Bus
	svc   *chat.Service
	nodes []*server
}

var clusterPrefixes atomic.Int64

// newCluster starts n gateways with cfg (Node and Listen are set for each)
// on a Redis directory. Each node's Keeper beats before the gateway
// serves, as the binary must do: routes of a node without a liveness key
// are not looked up.
func newCluster(t *testing.T, n int, cfg Config) *cluster {
	t.Helper()
	dir, err := redisdir.New(redisdir.Config{
		Addrs:     []string{testengines.Redis(t).Addr},
		KeyPrefix: fmt.Sprintf("gw%d:", clusterPrefixes.Add(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dir.Close)
	return newClusterOn(t, dir, n, cfg)
}

// directories are the shared directories the cluster tests run on: Redis,
// whose Register reports the routes it replaced, and the in-process one,
// which does not (the gateway then looks them up).
var directories = []struct {
	name string
	new  func(t *testing.T, n int, cfg Config) *cluster
}{
	{"redis", newCluster},
	{"memory", func(t *testing.T, n int, cfg Config) *cluster {
		return newClusterOn(t, memory.NewDirectory(), n, cfg)
	}},
}

func newClusterOn(t *testing.T, dir router.Directory, n int, cfg Config) *cluster {
	t.Helper()
	cl := &cluster{dir: dir, bus: memory.NewBus()}
	cl.redis, _ = dir.(*redisdir.Directory)
	var err error
	cl.svc, err = chat.New(chat.Config{}, memory.NewStore(), cl.bus, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.svc.Close() }) // runs after every gateway's shutdown
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	for i := range n {
		c := cfg
		c.Node = fmt.Sprintf("gw-%d", i+1)
		c.Listen = testserver.FreeAddr(t)
		if c.EventLoops == 0 {
			c.EventLoops = 2
		}
		g, err := New(c, Deps{Service: cl.svc, Bus: cl.bus, Directory: dir, Auth: testAuth{}})
		if err != nil {
			t.Fatal(err)
		}
		if cl.redis != nil {
			k := cl.redis.Keeper(c.Node, "test", g.Routes)
			if _, err := k.Beat(ctx); err != nil {
				t.Fatal(err)
			}
			go k.Run(ctx, nil)
		}
		runGateway(t, g, nil)
		cl.nodes = append(cl.nodes, &server{g: g, svc: cl.svc, addr: c.Listen})
	}
	return cl
}

// routes returns user's routes in the directory, by node.
func (cl *cluster) routes(t *testing.T, user string) []router.Route {
	t.Helper()
	rs, err := cl.dir.Lookup(context.Background(), user, nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rs, func(a, b router.Route) int { return strings.Compare(a.Node, b.Node) })
	return rs
}

// TestClusterDeliversAcrossNodes: alice on gateway 1 sends to bob on
// gateway 2, and bob gets the message live (the Service looks bob's route
// up in Redis and publishes to gw-2).
func TestClusterDeliversAcrossNodes(t *testing.T) {
	cl := newCluster(t, 2, Config{})
	alice := cl.nodes[0].dial(t, "ok:alice:phone")
	bob := cl.nodes[1].dial(t, "ok:bob:phone")
	alice.synced()
	bob.synced()
	if rs := cl.routes(t, "bob"); len(rs) != 1 || rs[0].Node != "gw-2" || rs[0].Epoch == 0 {
		t.Fatalf("bob's routes %+v, want one on gw-2 with an epoch", rs)
	}
	ack := alice.request(map[string]any{"type": "send", "id": "c1", "to": "bob", "body": "across"})
	if m := bob.read(); m.Type != "msg" || m.MsgID != ack.MsgID || m.Body != "across" || m.Seq != 1 {
		t.Fatalf("bob got %+v, want the message live", m)
	}
}

// TestClusterReplacesAcrossNodes: bob's phone reconnects on gateway 1
// while its old connection on gateway 2 is still open (half-open, say):
// the old one is closed with 4003 (replaced) through gw-2, the directory
// holds only the new route, and live messages reach the new connection.
func TestClusterReplacesAcrossNodes(t *testing.T) {
	for _, d := range directories {
		t.Run(d.name, func(t *testing.T) { testClusterReplaces(t, d.new(t, 2, Config{})) })
	}
}

func testClusterReplaces(t *testing.T, cl *cluster) {
	alice := cl.nodes[0].dial(t, "ok:alice")
	alice.synced()
	old := cl.nodes[1].dial(t, "ok:bob:phone")
	old.synced()
	laptop := cl.nodes[1].dial(t, "ok:bob:laptop") // another device: untouched
	laptop.synced()
	fresh := cl.nodes[0].dial(t, "ok:bob:phone")
	fresh.synced()
	if code := old.readClose(); code != CloseReplaced {
		t.Fatalf("old connection: close %d, want %d (replaced)", code, CloseReplaced)
	}
	rs := cl.routes(t, "bob")
	var phone []router.Route
	for _, r := range rs {
		if r.Device == "phone" {
			phone = append(phone, r)
		}
	}
	if len(rs) != 2 || len(phone) != 1 || phone[0].Node != "gw-1" {
		t.Fatalf("bob's routes %+v, want the laptop on gw-2 and the phone on gw-1 only", rs)
	}
	ack := alice.request(map[string]any{"type": "send", "id": "c1", "to": "bob", "body": "to the new one"})
	for _, c := range []*wsClient{fresh, laptop} {
		if m := c.read(); m.Type != "msg" || m.MsgID != ack.MsgID {
			t.Fatalf("bob got %+v, want the message live", m)
		}
	}
	// And back: the phone reconnects on gw-2; the gw-1 connection goes.
	back := cl.nodes[1].dial(t, "ok:bob:phone")
	back.synced()
	if code := fresh.readClose(); code != CloseReplaced {
		t.Fatalf("gw-1 connection: close %d, want %d", code, CloseReplaced)
	}
}

// TestClusterStaleRegisterClosed: a connection whose Register comes after
// a newer connection of its device registered (simulated: a route with a
// larger epoch registered directly) is refused by the directory
// (ErrSuperseded) and closed with 4003; the newer route stays.
func TestClusterStaleRegisterClosed(t *testing.T) {
	cl := newCluster(t, 2, Config{})
	ctx := context.Background()
	newer := router.Route{User: "carol", Device: "phone", Node: "gw-2", Conn: 1 << 40, Epoch: 1 << 62}
	if err := cl.dir.Register(ctx, newer); err != nil {
		t.Fatal(err)
	}
	stale := cl.nodes[0].dial(t, "ok:carol:phone")
	stale.send(map[string]any{"type": "sync", "after": 0})
	if code := stale.readClose(); code != CloseReplaced {
		t.Fatalf("stale connection: close %d, want %d (replaced)", code, CloseReplaced)
	}
	if rs := cl.routes(t, "carol"); len(rs) != 1 || rs[0] != newer {
		t.Fatalf("carol's routes %+v, want only %+v", rs, newer)
	}
	// The directory refuses such a route directly too.
	e, err := cl.redis.NextEpoch(ctx, "carol", "phone")
	if err != nil {
		t.Fatal(err)
	}
	err = cl.dir.Register(ctx, router.Route{User: "carol", Device: "phone", Node: "gw-1", Conn: 7, Epoch: e})
	if !errors.Is(err, router.ErrSuperseded) {
		t.Fatalf("stale Register: %v, want ErrSuperseded", err)
	}
}

// TestClusterMaxDevicesAcrossNodes: max_devices counts the user's devices
// on every gateway, not only on the one the new device connects to; a new
// connection of a device already connected elsewhere is not a new device.
func TestClusterMaxDevicesAcrossNodes(t *testing.T) {
	for _, d := range directories {
		t.Run(d.name, func(t *testing.T) { testClusterMaxDevices(t, d.new(t, 2, Config{MaxDevices: 2})) })
	}
}

func testClusterMaxDevices(t *testing.T, cl *cluster) {
	a := cl.nodes[0].dial(t, "ok:dave:a")
	a.synced()
	b := cl.nodes[1].dial(t, "ok:dave:b")
	b.synced()
	for i, s := range cl.nodes {
		third := s.dial(t, "ok:dave:c")
		if f := third.read(); f.Type != "error" || f.Code != "too_many_devices" {
			t.Fatalf("third device on gw-%d: %+v", i+1, f)
		}
		if code := third.readClose(); code != CloseTooManyDevices {
			t.Fatalf("third device on gw-%d: close %d, want %d", i+1, code, CloseTooManyDevices)
		}
	}
	again := cl.nodes[1].dial(t, "ok:dave:a") // device a moves to gw-2
	again.synced()
	if code := a.readClose(); code != CloseReplaced {
		t.Fatalf("device a's old connection: close %d, want %d", code, CloseReplaced)
	}
	again.request(map[string]any{"type": "send", "id": "still", "to": "bob", "body": "fine"})
}

// TestRoutesRebuildDirectory: Gateway.Routes lists every open connection
// of the node with its epoch, as registered; fed to a Keeper it restores
// the node's routes after Redis lost them.
func TestRoutesRebuildDirectory(t *testing.T) {
	cl := newCluster(t, 1, Config{})
	g := cl.nodes[0].g
	for _, tok := range []string{"ok:erin:phone", "ok:erin:laptop", "ok:frank"} {
		cl.nodes[0].dial(t, tok).synced()
	}
	want := append(cl.routes(t, "erin"), cl.routes(t, "frank")...)
	order := func(a, b router.Route) int { return strings.Compare(a.User+a.Device, b.User+b.Device) }
	slices.SortFunc(want, order)
	got := g.Routes()
	slices.SortFunc(got, order)
	if len(got) != 3 || !slices.Equal(got, want) {
		t.Fatalf("Routes() = %+v, want the directory's %+v", got, want)
	}
	// Redis loses everything (a restart without persistence).
	ctx := context.Background()
	for _, r := range want {
		if err := cl.dir.Unregister(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	k := cl.redis.Keeper("gw-1", "another incarnation", g.Routes)
	if rebuilt, err := k.Beat(ctx); err != nil || !rebuilt {
		t.Fatalf("Beat = %v, %v; want a rebuild", rebuilt, err)
	}
	got = append(cl.routes(t, "erin"), cl.routes(t, "frank")...)
	slices.SortFunc(got, order)
	if !slices.Equal(got, want) {
		t.Fatalf("after the rebuild the directory holds %+v, want %+v", got, want)
	}
}

// TestReplacedControlChecksEpoch: a "replaced" control item closes the
// connection it names only if that connection is older than its replacer
// (a node id reused by a restarted process must not have a newer
// connection closed by a stale item); a frame that only looks like one is
// not acted on.
func TestReplacedControlChecksEpoch(t *testing.T) {
	cl := newCluster(t, 1, Config{})
	c := cl.nodes[0].dial(t, "ok:gina:phone")
	c.synced()
	rs := cl.routes(t, "gina")
	if len(rs) != 1 || rs[0].Epoch == 0 {
		t.Fatalf("routes %+v", rs)
	}
	r := rs[0]
	publish := func(head []byte) {
		t.Helper()
		d := chat.Delivery{Items: []chat.Item{{User: "gina", Conn: r.Conn, Head: head}}}
		if err := cl.bus.Publish(context.Background(), "gw-1", &d); err != nil {
			t.Fatal(err)
		}
	}
	publish(appendReplaced(nil, r.Epoch))   // not newer
	publish(appendReplaced(nil, r.Epoch-1)) // older
	publish([]byte("\x00replaced:x"))       // malformed
	publish([]byte("\x00other:99999999999999999"))
	c.request(map[string]any{"type": "send", "id": "alive", "to": "bob", "body": "still open"})
	publish(appendReplaced(nil, r.Epoch+1))
	if code := c.readClose(); code != CloseReplaced {
		t.Fatalf("close %d, want %d", code, CloseReplaced)
	}
}

func TestParseReplaced(t *testing.T) {
	for _, e := range []uint64{1, 42, 1<<64 - 1} {
		if got, ok := parseReplaced(appendReplaced(nil, e)); !ok || got != e {
			t.Errorf("parseReplaced(appendReplaced(%d)) = %d, %v", e, got, ok)
		}
	}
	for _, h := range []string{"", "\x00replaced:", "\x00replaced:1a", "\x00replaced:18446744073709551616", "{\"type\":\"msg\"", "\x00replace:1"} {
		if e, ok := parseReplaced([]byte(h)); ok {
			t.Errorf("parseReplaced(%q) = %d, true; want refused", h, e)
		}
	}
}

// TestDefaultNodeUnique: gateways started from one config get distinct
// node ids by default (host name, pid, random suffix).
func TestDefaultNodeUnique(t *testing.T) {
	var a, b Config
	a.setDefaults()
	b.setDefaults()
	host, _ := os.Hostname()
	prefix := fmt.Sprintf("%s-%d-", host, os.Getpid())
	for _, n := range []string{a.Node, b.Node, DefaultNode()} {
		if len(n) != len(prefix)+8 || n[:len(prefix)] != prefix {
			t.Fatalf("default node %q: want %s<8 hex digits>", n, prefix)
		}
	}
	if a.Node == b.Node {
		t.Fatalf("two configs got the same default node %q", a.Node)
	}
	if c := (Config{Node: "gw-7"}); func() string { c.setDefaults(); return c.Node }() != "gw-7" {
		t.Fatal("an explicit node was replaced")
	}
}

// TestClusterDevicesListAcrossNodes: devices.list counts the user's
// devices on every gateway.
func TestClusterDevicesListAcrossNodes(t *testing.T) {
	for _, d := range directories {
		t.Run(d.name, func(t *testing.T) {
			cl := d.new(t, 2, Config{})
			phone := cl.nodes[0].dial(t, "ok:hal:phone")
			phone.synced()
			cl.nodes[1].dial(t, "ok:hal:laptop").synced()
			cl.nodes[1].dial(t, "ok:hal:tablet").synced()
			devs := phone.request(map[string]any{"type": "devices.list", "id": "d"})
			var parsed struct {
				Devices []struct {
					Device      string `json:"device"`
					Connections int    `json:"connections"`
					Current     bool   `json:"current"`
				} `json:"devices"`
			}
			if err := json.Unmarshal(devs.raw, &parsed); err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, d := range parsed.Devices {
				got += fmt.Sprintf("%s:%d:%v ", d.Device, d.Connections, d.Current)
			}
			if want := "laptop:1:false phone:1:true tablet:1:false "; got != want {
				t.Fatalf("devices.list on gw-1 = %q (%s), want %q", got, devs.raw, want)
			}
		})
	}
}

// TestDeliveryFencedByEpoch: once a node has had a delivery from a
// sequencer of some epoch, it drops those of smaller epochs (a deposed
// sequencer's); deliveries without an epoch (other gateways' control
// items, a one-box deployment) always pass.
func TestDeliveryFencedByEpoch(t *testing.T) {
	cl := newCluster(t, 1, Config{})
	c := cl.nodes[0].dial(t, "ok:ivy:phone")
	c.synced()
	publish := func(epoch uint64, from string) {
		t.Helper()
		d := chat.Delivery{Epoch: epoch, Items: []chat.Item{{User: "ivy", Head: []byte(`{"type":"typing","from":"` + from + `","to":"ivy"}`)}}}
		if err := cl.bus.Publish(context.Background(), "gw-1", &d); err != nil {
			t.Fatal(err)
		}
	}
	publish(5, "a")
	publish(4, "deposed")
	publish(0, "b")
	publish(6, "c")
	publish(5, "deposed")
	publish(0, "end")
	for _, want := range []string{"a", "b", "c", "end"} {
		if f := c.read(); f.Type != "typing" || f.From != want {
			t.Fatalf("got %+v, want typing from %s", f, want)
		}
	}
	var m dto.Metric
	if err := cl.nodes[0].g.m.fenced.Write(&m); err != nil || m.GetCounter().GetValue() != 2 {
		t.Fatalf("fenced deliveries counted %v (%v), want 2", m.GetCounter().GetValue(), err)
	}
}
