package cassandra

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func migrationNames() []string {
	var names []string
	for _, m := range Migrations() {
		names = append(names, m.Name)
	}
	return names
}

// rawSession is a session without a keyspace, closed when the test ends.
func rawSession(t *testing.T, cfg Config) *gocql.Session {
	t.Helper()
	cfg.setDefaults()
	s, _, err := connect(&cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestMigrate runs Migrate on a fresh keyspace (NetworkTopologyStrategy)
// and checks what an operator relies on: Open refuses before, Migrate
// applies everything once and records it, a rerun applies nothing, an
// edited migration is refused, and a lost record is reapplied without
// harm to the data.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	cfg := serverConfig(t, "sbmig")
	cfg.Replication = "datacenter1:1" // SimpleSnitch's data center
	raw := rawSession(t, cfg)

	if _, err := Open(ctx, cfg); !errors.Is(err, ErrSchemaBehind) {
		t.Fatalf("Open before Migrate = %v, want ErrSchemaBehind", err)
	}
	if p, err := Pending(ctx, cfg); err != nil || len(p) != len(Migrations()) {
		t.Fatalf("Pending on a fresh cluster = %d migrations, %v; want all %d", len(p), err, len(Migrations()))
	}
	applied, err := Migrate(ctx, cfg)
	if err != nil || !slices.Equal(applied, migrationNames()) {
		t.Fatalf("Migrate = %q, %v; want %q", applied, err, migrationNames())
	}

	var repl map[string]string
	if err := raw.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'sbmig'`).Scan(&repl); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(repl["class"], "NetworkTopologyStrategy") || repl["datacenter1"] != "1" {
		t.Fatalf("keyspace replication = %v, want NetworkTopologyStrategy datacenter1: 1", repl)
	}
	m := Migrations()[0]
	var name, sum string
	var at time.Time
	if err := raw.Query(`SELECT name, checksum, applied_at FROM sbmig.schema_migrations WHERE version = 1`).Scan(&name, &sum, &at); err != nil {
		t.Fatal(err)
	}
	if name != m.Name || sum != m.Checksum || time.Since(at) > time.Hour {
		t.Fatalf("schema_migrations(1) = %q %q %v; want %q %q, now", name, sum, at, m.Name, m.Checksum)
	}

	if applied, err := Migrate(ctx, cfg); err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %q, %v; want nothing applied", applied, err)
	}
	if p, err := Pending(ctx, cfg); err != nil || len(p) != 0 {
		t.Fatalf("Pending after Migrate = %d, %v; want none", len(p), err)
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	defer s.Close()
	s.SetWriterEpoch(1)
	mustApply(t, s, entryBatch("bob", 1, "kept", "m1", "c1"))

	// An applied migration edited afterwards.
	if err := raw.Query(`UPDATE sbmig.schema_migrations SET checksum = 'edited' WHERE version = 1`).Exec(); err != nil {
		t.Fatal(err)
	}
	if applied, err := Migrate(ctx, cfg); !errors.Is(err, ErrChecksumMismatch) || len(applied) != 0 {
		t.Fatalf("Migrate over an edited migration = %q, %v; want ErrChecksumMismatch, nothing applied", applied, err)
	}
	if _, err := Open(ctx, cfg); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Open over an edited migration = %v, want ErrChecksumMismatch", err)
	}

	// A schema behind the binary (here: the record lost, as after a
	// Migrate interrupted between its statements and its record).
	if err := raw.Query(`DELETE FROM sbmig.schema_migrations WHERE version = 1`).Exec(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, cfg)
	if !errors.Is(err, ErrSchemaBehind) || !strings.Contains(err.Error(), m.Name) || !strings.Contains(err.Error(), "switchboard migrate") {
		t.Fatalf("Open behind = %v; want ErrSchemaBehind naming %s and `switchboard migrate`", err, m.Name)
	}
	if applied, err := Migrate(ctx, cfg); err != nil || !slices.Equal(applied, []string{m.Name}) {
		t.Fatalf("Migrate after the record was lost = %q, %v; want %s reapplied", applied, err, m.Name)
	}
	if got := frameAt(t, s, "bob", 1); got != "kept" {
		t.Fatalf("entry after the migration was reapplied = %q, want kept", got)
	}
}

// TestMigrateSimpleStrategy: a plain factor makes a SimpleStrategy
// keyspace (the shared test keyspace).
func TestMigrateSimpleStrategy(t *testing.T) {
	cfg := migrated(t)
	var repl map[string]string
	if err := rawSession(t, cfg).Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, testKeyspace).Scan(&repl); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(repl["class"], "SimpleStrategy") || repl["replication_factor"] != "1" {
		t.Fatalf("replication = %v, want SimpleStrategy factor 1", repl)
	}
}

func TestLoadMigrations(t *testing.T) {
	ms := Migrations()
	if len(ms) == 0 || ms[0].Version != 1 || len(ms[0].stmts) < 10 {
		t.Fatalf("embedded migrations: %d, first %+v", len(ms), ms[0].Name)
	}
	for _, m := range ms {
		for _, st := range m.stmts {
			if strings.Contains(st, ";") || strings.Contains(st, "--") {
				t.Errorf("%s: statement not split clean: %q", m.Name, st)
			}
		}
	}
	ok := fstest.MapFS{
		"migrations/0001_a.cql": {Data: []byte("-- c\nCREATE TABLE a (k int PRIMARY KEY);\nCREATE TABLE b (\n k int PRIMARY KEY\n);\n")},
		"migrations/0002_b.cql": {Data: []byte("ALTER TABLE a ADD v int;")},
	}
	got, err := loadMigrations(ok)
	if err != nil || len(got) != 2 || len(got[0].stmts) != 2 || got[1].Name != "0002_b" || got[0].Checksum == got[1].Checksum {
		t.Fatalf("loadMigrations = %+v, %v", got, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":     {"migrations/0001_a.cql": ok["migrations/0001_a.cql"], "migrations/0003_c.cql": ok["migrations/0002_b.cql"]},
		"badname": {"migrations/1_a.cql": ok["migrations/0001_a.cql"]},
		"empty":   {"migrations/0001_a.cql": {Data: []byte("-- nothing\n")}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("loadMigrations(%s) succeeded", name)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	zero.setDefaults()
	if zero.Keyspace != DefaultKeyspace || zero.Consistency != "LOCAL_QUORUM" || zero.Replication != "3" || zero.Hosts[0] != DefaultHost {
		t.Fatalf("defaults = %+v", zero)
	}
	for name, c := range map[string]Config{
		"keyspace":    {Keyspace: "a-b"},
		"consistency": {Consistency: "MOST"},
		"replication": {Replication: "dc1:0"},
		"replfmt":     {Replication: "dc1=3"},
		"host":        {Hosts: []string{"h:99999"}},
		"password":    {Username: "u"},
		"timeout":     {QueryTimeout: -1},
		"batch":       {BatchBytes: 10},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v is valid", name, c)
		}
	}
	for in, want := range map[string]string{
		"3":            "{'class': 'SimpleStrategy', 'replication_factor': 3}",
		"dc1:3,dc2:2":  "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}",
		"dc1:3, dc2:1": "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 1}",
	} {
		if got, err := replicationCQL(in); err != nil || got != want {
			t.Errorf("replicationCQL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
