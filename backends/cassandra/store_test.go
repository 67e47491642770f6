package cassandra

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/chat/storetest"
	"github.com/switchboard/switchboard/internal/testengines"
	"github.com/switchboard/switchboard/presence"
	"github.com/switchboard/switchboard/presence/presencetest"
)

func TestMain(m *testing.M) { os.Exit(testengines.Run(m)) }

// The tests share one keyspace, migrated once; each store gets its own
// Namespace, so a subtest starts empty without a schema change (creating
// a keyspace and its tables takes 1 to 2 s on the 2-core test box, a
// namespace nothing).
const testKeyspace = "sbtest"

var (
	migrateOnce sync.Once
	migrateErr  error
	nsCount     atomic.Int64
)

// serverConfig is a Config for the package's shared Cassandra.
func serverConfig(t testing.TB, keyspace string) Config {
	t.Helper()
	c := testengines.Cassandra(t)
	// Schema changes on a busy 2-core box take seconds.
	return Config{Hosts: []string{c.Addr}, Keyspace: keyspace, Replication: "1", QueryTimeout: 30 * time.Second, NumConns: 1}
}

// migrated returns the Config of the shared test keyspace, migrated.
func migrated(t testing.TB) Config {
	t.Helper()
	cfg := serverConfig(t, testKeyspace)
	migrateOnce.Do(func() {
		start := time.Now()
		_, migrateErr = Migrate(context.Background(), cfg)
		t.Logf("Migrate of the shared test keyspace took %v", time.Since(start))
	})
	if migrateErr != nil {
		t.Fatalf("Migrate: %v", migrateErr)
	}
	return cfg
}

func newNamespace() string { return fmt.Sprintf("ns%d", nsCount.Add(1)) }

// openNS opens a Store on namespace ns of the test keyspace, closed when
// the test ends, without a writer epoch; opts change its Config.
func openNS(t testing.TB, ns string, opts ...func(*Config)) *Store {
	t.Helper()
	cfg := migrated(t)
	cfg.Namespace = ns
	for _, o := range opts {
		o(&cfg)
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openWriter opens a Store on ns and takes the namespace's lease, as a
// server does when it starts: each open gets a larger epoch.
func openWriter(t testing.TB, ns string, opts ...func(*Config)) *Store {
	t.Helper()
	s := openNS(t, ns, opts...)
	e, err := s.AcquireLease(context.Background(), "chat", t.Name())
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	s.SetWriterEpoch(e)
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store { return openWriter(t, newNamespace()) })
}

func batchEntries(c *Config) { c.BatchEntries = true }

// TestStoreBatchEntries applies, with the first phase in multi-partition
// batches, a batch larger than many BatchBytes holding a frame larger
// than one (sent on its own), and reads every entry back exactly.
func TestStoreBatchEntries(t *testing.T) {
	s := openWriter(t, newNamespace(), batchEntries)
	ctx := context.Background()
	big := bytes.Repeat([]byte{0, 0xff, 'x'}, 100<<10)
	b := &chat.Batch{Time: time.Now(), Shared: []chat.SharedPart{{Key: "m1", Data: []byte(`,"tail":1}`)}}}
	b.Entries = append(b.Entries, chat.Entry{User: "big", Seq: 1, Frame: big})
	for i := range 300 {
		u := fmt.Sprintf("user-%d", i)
		b.Entries = append(b.Entries,
			chat.Entry{User: u, Seq: 1, Frame: storetest.Frame(u, 1)},
			chat.Entry{User: u, Seq: 2, Frame: []byte(`{"seq":2`), Shared: "m1"})
	}
	if err := s.Apply(ctx, b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, e := range b.Entries {
		want := e.Frame
		if e.Shared != "" {
			want = append(bytes.Clone(e.Frame), `,"tail":1}`...)
		}
		if got := frameAt(t, s, e.User, e.Seq); got != string(want) {
			t.Fatalf("(%s, %d) = %d bytes, want %d bytes, identical", e.User, e.Seq, len(got), len(want))
		}
	}
}

// dirNamespaces maps the suite's directories to namespaces: reopening
// "the same dir" is reopening the same namespace.
var dirNamespaces sync.Map

func dirNamespace(dir string) string {
	ns, _ := dirNamespaces.LoadOrStore(dir, newNamespace())
	return ns.(string)
}

func TestStoreDurable(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T, dir string) chat.Store { return openWriter(t, dirNamespace(dir)) })
}

func TestPresenceStore(t *testing.T) {
	presencetest.Run(t, func(t *testing.T) presence.Store { return openNS(t, newNamespace()).Presence() })
}

// closingPresence closes the Store that holds the presence rows.
type closingPresence struct {
	*PresenceStore
	io.Closer
}

func TestPresenceStoreDurable(t *testing.T) {
	presencetest.RunDurable(t, func(t *testing.T, dir string) presence.Store {
		s := openNS(t, dirNamespace(dir))
		return closingPresence{s.Presence(), s}
	})
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// entryBatch is a batch writing frame at (user, seq), and optionally the
// message id whose entry it is (with client id cid of sender "alice").
func entryBatch(user string, seq uint64, frame, id, cid string) *chat.Batch {
	b := &chat.Batch{Time: t0, Entries: []chat.Entry{{User: user, Seq: seq, Frame: []byte(frame)}}}
	if id != "" {
		b.Messages = []chat.MessageMeta{{ID: id, From: "alice", To: user, ClientID: cid, TS: 1, Seq: seq, Status: chat.StatusSent}}
	}
	return b
}

func mustApply(t *testing.T, s *Store, b *chat.Batch) {
	t.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// frameAt reads the frame at (user, seq).
func frameAt(t *testing.T, s *Store, user string, seq uint64) string {
	t.Helper()
	var got []string
	err := s.ReadInbox(context.Background(), user, seq-1, 1, func(_ uint64, f []byte) error {
		got = append(got, string(f))
		return nil
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadInbox(%s, %d) = %q, %v; want one entry", user, seq, got, err)
	}
	return got[0]
}
