package cassandra

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

//go:embed migrations/*.cql
var migrationFS embed.FS

// Migration errors.
var (
	// ErrSchemaBehind is returned (wrapped) by Open when the keyspace is
	// missing or lacks a migration this binary needs: run `switchboard
	// migrate`.
	ErrSchemaBehind = errors.New("cassandra: schema is behind this binary: run `switchboard migrate`")
	// ErrChecksumMismatch is returned (wrapped) by Migrate and Open when a
	// migration recorded as applied differs from the binary's copy: the
	// file was edited after it was applied. Add a new migration instead.
	ErrChecksumMismatch = errors.New("cassandra: an applied migration was changed")
)

// Migration is one versioned CQL file, migrations/NNNN_name.cql.
type Migration struct {
	Version  int      // NNNN
	Name     string   // the file name without .cql, e.g. "0001_init"
	CQL      string   // the file's text
	Checksum string   // hex SHA-256 of CQL
	stmts    []string // CQL split into statements
}

// Migrations returns the migrations embedded in the binary, by version.
func Migrations() []Migration {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		panic(err) // the embedded files are checked by the tests
	}
	return ms
}

// loadMigrations reads and checks migrations/*.cql: versions from 1 up
// without a gap or a repeat.
func loadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.cql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var ms []Migration
	for i, p := range names {
		name := strings.TrimSuffix(path.Base(p), ".cql")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 {
			return nil, fmt.Errorf("cassandra: migration %s: want NNNN_name.cql", p)
		}
		if v != i+1 {
			return nil, fmt.Errorf("cassandra: migration %s: version %d, want %d (no gaps, no repeats)", p, v, i+1)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		m := Migration{Version: v, Name: name, CQL: string(b), Checksum: hex.EncodeToString(sum[:])}
		m.stmts = splitCQL(m.CQL)
		if len(m.stmts) == 0 {
			return nil, fmt.Errorf("cassandra: migration %s holds no statement", p)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// splitCQL splits a file into statements: "--" comment lines are dropped
// and a statement ends with a line ending in ";".
func splitCQL(src string) []string {
	var stmts []string
	var cur strings.Builder
	for line := range strings.SplitSeq(src, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

const (
	cqlCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY, name text, checksum text, applied_at timestamp)`
	cqlInsertMigration = `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`
)

type appliedMigration struct {
	name, checksum string
}

// readApplied reads ks.schema_migrations; a missing table is no
// migration. ksOK reports whether the keyspace exists.
func readApplied(ctx context.Context, s *gocql.Session, ks string) (_ map[int]appliedMigration, ksOK bool, _ error) {
	var name string
	err := s.Query(`SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).
		Idempotent(true).ScanContext(ctx, &name)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cassandra: keyspace %s: %w", ks, err)
	}
	err = s.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'schema_migrations'`, ks).
		Idempotent(true).ScanContext(ctx, &name)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("cassandra: keyspace %s: %w", ks, err)
	}
	out := map[int]appliedMigration{}
	it := s.Query(`SELECT version, name, checksum FROM ` + ks + `.schema_migrations`).Idempotent(true).IterContext(ctx)
	var v int
	var a appliedMigration
	for it.Scan(&v, &a.name, &a.checksum) {
		out[v] = a
	}
	if err := it.Close(); err != nil {
		return nil, true, fmt.Errorf("cassandra: read %s.schema_migrations: %w", ks, err)
	}
	return out, true, nil
}

// pending compares the embedded migrations with those applied: it returns
// those not applied yet, or ErrChecksumMismatch.
func pending(ms []Migration, applied map[int]appliedMigration) ([]Migration, error) {
	var out []Migration
	for _, m := range ms {
		a, ok := applied[m.Version]
		if !ok {
			out = append(out, m)
			continue
		}
		if a.checksum != m.Checksum {
			return nil, fmt.Errorf("%w: %s was applied with checksum %s, the binary's is %s", ErrChecksumMismatch, m.Name, a.checksum, m.Checksum)
		}
	}
	return out, nil
}

// connect opens a session to the cluster, into keyspace ks if not "".
func connect(cfg *Config, ks string) (*gocql.Session, gocql.Consistency, error) {
	cl, cons, err := cfg.cluster()
	if err != nil {
		return nil, 0, err
	}
	cl.Keyspace = ks
	s, err := cl.CreateSession()
	if err != nil {
		return nil, 0, fmt.Errorf("cassandra: connect to %v: %w", cfg.Hosts, err)
	}
	return s, cons, nil
}

// Pending returns the migrations that Migrate would apply to the keyspace
// of cfg (all of them when it does not exist), without changing anything.
// It returns ErrChecksumMismatch (wrapped) when an applied one changed.
func Pending(ctx context.Context, cfg Config) ([]Migration, error) {
	cfg, err := cfg.filled()
	if err != nil {
		return nil, err
	}
	s, _, err := connect(&cfg, "")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	applied, _, err := readApplied(ctx, s, cfg.Keyspace)
	if err != nil {
		return nil, err
	}
	return pending(Migrations(), applied)
}

// Migrate brings the keyspace of cfg up to the binary's schema: it creates
// the keyspace (replication from cfg.Replication) and schema_migrations if
// they are missing, then applies every migration not recorded there, in
// version order, waiting for schema agreement after each statement, and
// records each one (version, name, checksum, applied_at) once all its
// statements succeeded. It returns the names of those it applied: none on
// a second run. It refuses, applying nothing, when an applied migration's
// checksum differs from the binary's (ErrChecksumMismatch). Statements
// are idempotent (IF NOT EXISTS), so a run interrupted half way is
// finished by the next. Run one Migrate at a time per keyspace.
func Migrate(ctx context.Context, cfg Config) (applied []string, err error) {
	cfg, err = cfg.filled()
	if err != nil {
		return nil, err
	}
	repl, err := replicationCQL(cfg.Replication)
	if err != nil {
		return nil, err
	}
	s, cons, err := connect(&cfg, "")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ks := cfg.Keyspace
	ddl := func(stmt string) error {
		if err := s.Query(stmt).Idempotent(true).ExecContext(ctx); err != nil {
			return fmt.Errorf("cassandra: migrate: %s: %w", firstLine(stmt), err)
		}
		if err := s.AwaitSchemaAgreement(ctx); err != nil {
			return fmt.Errorf("cassandra: migrate: schema agreement after %s: %w", firstLine(stmt), err)
		}
		return nil
	}
	if err := ddl(`CREATE KEYSPACE IF NOT EXISTS ` + ks + ` WITH replication = ` + repl); err != nil {
		return nil, err
	}
	done, _, err := readApplied(ctx, s, ks)
	if err != nil {
		return nil, err
	}
	todo, err := pending(Migrations(), done)
	if err != nil {
		return nil, err
	}
	if len(todo) == 0 {
		return nil, nil
	}
	ksess, _, err := connect(&cfg, ks)
	if err != nil {
		return nil, err
	}
	defer ksess.Close()
	s = ksess
	if err := ddl(cqlCreateMigrations); err != nil {
		return nil, err
	}
	for _, m := range todo {
		for _, stmt := range m.stmts {
			if err := ddl(stmt); err != nil {
				return applied, fmt.Errorf("%s: %w", m.Name, err)
			}
		}
		if err := s.Query(cqlInsertMigration, m.Version, m.Name, m.Checksum, time.Now()).
			Consistency(cons).Idempotent(true).ExecContext(ctx); err != nil {
			return applied, fmt.Errorf("cassandra: migrate: record %s: %w", m.Name, err)
		}
		applied = append(applied, m.Name)
		cfg.Logger.Info("cassandra: migration applied", "keyspace", ks, "migration", m.Name, "statements", len(m.stmts))
	}
	return applied, nil
}

// checkSchema returns ErrSchemaBehind (wrapped, naming what is missing)
// unless every embedded migration is recorded in ks with its checksum.
// A schema ahead of the binary (migrations it does not know) is accepted:
// migrations only add, so an older binary keeps working during a rollout.
func checkSchema(ctx context.Context, s *gocql.Session, ks string) error {
	applied, ksOK, err := readApplied(ctx, s, ks)
	if err != nil {
		return err
	}
	if !ksOK {
		return fmt.Errorf("%w (keyspace %s does not exist)", ErrSchemaBehind, ks)
	}
	todo, err := pending(Migrations(), applied)
	if err != nil {
		return err
	}
	if len(todo) > 0 {
		names := make([]string, len(todo))
		for i, m := range todo {
			names[i] = m.Name
		}
		return fmt.Errorf("%w (keyspace %s lacks %s)", ErrSchemaBehind, ks, strings.Join(names, ", "))
	}
	return nil
}

func firstLine(stmt string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(stmt), "\n")
	return strings.TrimSpace(strings.TrimSuffix(l, "("))
}
