package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/chat"
)

func sampleDeliveries() []*chat.Delivery {
	return []*chat.Delivery{
		{},
		{Shared: []byte(`,"body":"hi"}`), Items: []chat.Item{{User: "alice", Seq: 7, Head: []byte(`{"seq":7`)}}},
		{Items: []chat.Item{{User: "", Seq: 0, Conn: 1<<64 - 1, Head: nil}, {User: "bob\x00é", Seq: 1 << 63, Head: []byte{0, 0xff}}}},
	}
}

// sameDelivery reports whether a and b carry the same bytes (nil and
// empty alike).
func sameDelivery(a, b *chat.Delivery) bool {
	return bytes.Equal(a.Shared, b.Shared) && slices.EqualFunc(a.Items, b.Items, func(x, y chat.Item) bool {
		return x.User == y.User && x.Seq == y.Seq && x.Conn == y.Conn && bytes.Equal(x.Head, y.Head)
	})
}

func TestDeliveryRoundTrip(t *testing.T) {
	var got chat.Delivery
	for i, d := range sampleDeliveries() {
		buf := appendDelivery([]byte("prefix"), d)
		if !bytes.HasPrefix(buf, []byte("prefix")) {
			t.Fatalf("%d: appendDelivery did not append", i)
		}
		if err := decodeDelivery(buf[len("prefix"):], &got); err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if !sameDelivery(&got, d) {
			t.Fatalf("%d: got %+v, want %+v", i, got, d)
		}
	}
}

// TestDeliveryEncodesSharedOnce: the shared part is in the record once,
// whatever the number of items.
func TestDeliveryEncodesSharedOnce(t *testing.T) {
	shared := []byte(strings.Repeat("S", 1000))
	d := &chat.Delivery{Shared: shared}
	for i := range 100 {
		d.Items = append(d.Items, chat.Item{User: fmt.Sprint("u", i), Seq: uint64(i), Head: []byte("{}")})
	}
	buf := appendDelivery(nil, d)
	if n := bytes.Count(buf, shared); n != 1 {
		t.Fatalf("shared part encoded %d times", n)
	}
	if len(buf) > len(shared)+100*10 {
		t.Fatalf("100 small items took %d bytes", len(buf)-len(shared))
	}
}

// TestDecodeDeliveryAllocs: decoding into a Delivery whose Items have
// room allocates nothing, however many items.
func TestDecodeDeliveryAllocs(t *testing.T) {
	d := &chat.Delivery{Shared: []byte("tail")}
	for i := range 1024 {
		d.Items = append(d.Items, chat.Item{User: fmt.Sprint("member-", i), Seq: uint64(i), Head: []byte(`{"seq":1`)})
	}
	buf := appendDelivery(nil, d)
	var got chat.Delivery
	if err := decodeDelivery(buf, &got); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := decodeDelivery(buf, &got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("decode allocates %v times", allocs)
	}
}

func TestDecodeDeliveryRejects(t *testing.T) {
	valid := appendDelivery(nil, sampleDeliveries()[1])
	for name, src := range map[string][]byte{
		"empty":              nil,
		"truncated":          valid[:len(valid)-1],
		"trailing byte":      append(slices.Clip(valid), 0),
		"shared past end":    {10, 'a'},
		"huge item count":    {0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"item count overrun": {0, 2, 0, 0, 0, 0},
		"overlong uvarint":   {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
	} {
		var d chat.Delivery
		if err := decodeDelivery(src, &d); !errors.Is(err, errBadDelivery) {
			t.Errorf("%s: decode returned %v, want errBadDelivery", name, err)
		}
	}
}

// FuzzDecodeDelivery: whatever a peer writes to a node topic, decoding
// never panics nor allocates for more items than the bytes can hold, and
// what decodes encodes back to a record that decodes the same.
func FuzzDecodeDelivery(f *testing.F) {
	for _, d := range sampleDeliveries() {
		f.Add(appendDelivery(nil, d))
	}
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, src []byte) {
		var d chat.Delivery
		if err := decodeDelivery(src, &d); err != nil {
			return
		}
		if len(d.Items)*minItemBytes > len(src) {
			t.Fatalf("%d items from %d bytes", len(d.Items), len(src))
		}
		var again chat.Delivery
		if err := decodeDelivery(appendDelivery(nil, &d), &again); err != nil || !sameDelivery(&d, &again) {
			t.Fatalf("re-encoded delivery decodes to %+v, %v; want %+v", again, err, d)
		}
	})
}

func TestTopicName(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"node-a", "sb.node.node-a"},
		{"host.example-1234", "sb.node.host.example-1234"},
		{"a_b", "sb.node.a_5fb"},
		{"a:b/c", "sb.node.a_3ab_2fc"},
		{"é", "sb.node._c3_a9"},
	} {
		got, err := topicName("sb.", "node.", c.name)
		if err != nil || got != c.want {
			t.Errorf("topicName(%q) = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	// Distinct names, distinct topics: "_" is escaped too.
	a, _ := topicName("sb.", "node.", "a_3ab")
	b, _ := topicName("sb.", "node.", "a:b")
	if a == b {
		t.Fatalf("%q and %q share topic %q", "a_3ab", "a:b", a)
	}
	for _, bad := range []string{"", strings.Repeat("x", 250)} {
		if _, err := topicName("sb.", "node.", bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("topicName(%.10q…): %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := Config{Brokers: []string{"127.0.0.1:9092"}}
	if err := valid.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"no brokers":        func(c *Config) { c.Brokers = nil },
		"empty broker":      func(c *Config) { c.Brokers = []string{""} },
		"prefix character":  func(c *Config) { c.TopicPrefix = "sb/" },
		"min isr above rf":  func(c *Config) { c.ReplicationFactor, c.MinInsyncReplicas = 1, 2 },
		"min isr above def": func(c *Config) { c.MinInsyncReplicas = 4 },
		"negative timeout":  func(c *Config) { c.PublishTimeout = -1 },
		"compression":       func(c *Config) { c.Compression = "gzip9" },
		"external stream":   func(c *Config) { c.ExternalStreams = []string{""} },
		"partitions":        func(c *Config) { c.StreamPartitions = -1 },
	} {
		c := valid
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	c := Config{Brokers: []string{"x:1"}, ReplicationFactor: 1}
	c.setDefaults()
	if c.MinInsyncReplicas != 1 || c.TopicPrefix != DefaultTopicPrefix || c.StreamPartitions != DefaultStreamPartitions {
		t.Fatalf("defaults for replication factor 1: %+v", c)
	}
}
