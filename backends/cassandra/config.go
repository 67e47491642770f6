package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Defaults of Config, filled in for zero fields.
const (
	DefaultHost              = "127.0.0.1:9042"
	DefaultKeyspace          = "switchboard"
	DefaultConsistency       = "LOCAL_QUORUM"
	DefaultReplicationFactor = 3
	DefaultConnectTimeout    = 10 * time.Second
	DefaultQueryTimeout      = 10 * time.Second
	DefaultNumConns          = 2
	DefaultBatchBytes        = 40 << 10
	DefaultInlineShared      = 2
)

// Config configures a Store and Migrate. The zero value of every field
// means its default.
type Config struct {
	// Hosts are contact points, host:port (a host without a port uses
	// 9042). Default ["127.0.0.1:9042"].
	Hosts []string `yaml:"hosts" help:"contact points host:port (default 127.0.0.1:9042)"`

	// Keyspace holds every table. It must be a CQL identifier: a letter,
	// then up to 47 letters, digits or underscores. Default "switchboard".
	Keyspace string `yaml:"keyspace" help:"keyspace holding every table (default switchboard)"`

	// LocalDC is the data center this process is in. With it, requests go
	// to that data center's replicas first (token-aware over DC-aware
	// round robin) and LOCAL_QUORUM means a quorum there. Default "": any
	// host, token-aware over round robin.
	LocalDC string `yaml:"local_dc" help:"this process's data center: requests go to its replicas first, LOCAL_QUORUM is a quorum there (default none)"`

	// Consistency of every read and write but the lease's compare-and-set
	// (LOCAL_SERIAL): a CQL consistency name. Default "LOCAL_QUORUM".
	// Anything weaker than a quorum loses the guarantee that a read sees
	// every write whose Apply returned.
	Consistency string `yaml:"consistency" help:"consistency of reads and writes (default LOCAL_QUORUM; weaker loses read-your-writes)"`

	// Replication is used by Migrate when it creates the keyspace: "N"
	// for SimpleStrategy with replication factor N (one data center,
	// tests), or "dc1:N,dc2:M" for NetworkTopologyStrategy (production).
	// It is not changed on an existing keyspace. Default "3" (SimpleStrategy,
	// factor 3).
	Replication string `yaml:"replication" help:"keyspace replication used by switchboard migrate: N (SimpleStrategy) or dc1:N,dc2:M (default 3)"`

	// ConnectTimeout bounds dialing and setting up a connection. Default
	// 10 s.
	ConnectTimeout time.Duration `yaml:"connect_timeout" help:"bound on dialing a host (default 10s)"`

	// QueryTimeout bounds one request (query or batch) on the client side;
	// keep it above the server's write_request_timeout (2 s by default).
	// Default 10 s.
	QueryTimeout time.Duration `yaml:"query_timeout" help:"client-side bound on one request; keep above the server's write timeout (default 10s)"`

	// NumConns is the number of connections per host. Default 2.
	NumConns int `yaml:"num_conns" help:"connections per host (default 2)"`

	// Username and Password authenticate (PasswordAuthenticator); both
	// optional, both or neither.
	Username string `yaml:"username" help:"user for PasswordAuthenticator (optional)"`
	Password string `yaml:"password" help:"password for PasswordAuthenticator (optional)"`

	// Namespace isolates stores that share a keyspace: it is a column of
	// every partition key, so two namespaces never see each other's rows.
	// Tests give each store its own; a deployment leaves it empty.
	// Default "".
	Namespace string `yaml:"namespace" help:"isolates stores sharing a keyspace (tests); leave empty (default none)"`

	// BatchBytes bounds the estimated size of one multi-partition batch
	// that Apply sends. Keep it under the server's
	// batch_size_fail_threshold (50 KiB by default). Default 40 KiB.
	BatchBytes int `yaml:"batch_bytes" help:"bound on one multi-partition batch; keep under the server's batch_size_fail_threshold (default 40 KiB)"`

	// BatchEntries makes Apply send its first phase (inbox entries, shared
	// parts, retention index, messages, client ids) as multi-partition
	// UNLOGGED batches of at most BatchBytes, instead of one request per
	// partition routed to its replicas. Fewer requests: about twice the
	// Apply throughput on one node (compare BenchmarkApply/PerPartition
	// and /BatchEntries); but the coordinator forwards every mutation, and
	// the server logs a warning per batch unless
	// unlogged_batch_across_partitions_warn_threshold is raised. Default
	// false.
	BatchEntries bool `yaml:"batch_entries" help:"send inbox entries and messages in unlogged multi-partition batches: about twice the throughput on one node (default false)"`

	// InlineShared: a shared part (chat.SharedPart) named by at most this
	// many entries of its batch is copied into each of them rather than
	// stored once, so that reading them costs no request for the part. A
	// one-to-one message names its part twice (the recipient's entry and
	// the sender's own copy); a group message once per member. Negative:
	// always store parts once. Default 2 (DefaultInlineShared).
	InlineShared int `yaml:"inline_shared" help:"copy a shared message part into up to this many entries instead of storing it once (default 2; negative: never)"`

	// Logger receives the driver's log (host up and down, reconnections,
	// schema refreshes) and Migrate's progress. Default: discard.
	Logger *slog.Logger `yaml:"-"`
}

var identRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)

func (c *Config) setDefaults() {
	if len(c.Hosts) == 0 {
		c.Hosts = []string{DefaultHost}
	}
	if c.Keyspace == "" {
		c.Keyspace = DefaultKeyspace
	}
	if c.Consistency == "" {
		c.Consistency = DefaultConsistency
	}
	if c.Replication == "" {
		c.Replication = strconv.Itoa(DefaultReplicationFactor)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.NumConns == 0 {
		c.NumConns = DefaultNumConns
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.InlineShared == 0 {
		c.InlineShared = DefaultInlineShared
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// filled validates c and returns it with its defaults filled in.
func (c Config) filled() (Config, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	c.setDefaults()
	return c, nil
}

// Validate reports what is wrong with c, all problems joined; zero fields
// are valid (they mean their defaults).
func (c *Config) Validate() error {
	var errs []error
	for _, h := range c.Hosts {
		if h == "" {
			errs = append(errs, errors.New("cassandra: hosts: empty host"))
		} else if _, _, err := splitHost(h); err != nil {
			errs = append(errs, fmt.Errorf("cassandra: hosts: %w", err))
		}
	}
	if c.Keyspace != "" && !identRE.MatchString(c.Keyspace) {
		errs = append(errs, fmt.Errorf("cassandra: keyspace %q is not a CQL identifier (a letter, then letters, digits or _, at most 48)", c.Keyspace))
	}
	if c.Consistency != "" {
		if _, err := gocql.ParseConsistencyWrapper(c.Consistency); err != nil {
			errs = append(errs, fmt.Errorf("cassandra: consistency %q: %w", c.Consistency, err))
		}
	}
	if c.Replication != "" {
		if _, err := replicationCQL(c.Replication); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ConnectTimeout < 0 || c.QueryTimeout < 0 {
		errs = append(errs, errors.New("cassandra: connect_timeout and query_timeout must not be negative"))
	}
	if c.NumConns < 0 {
		errs = append(errs, fmt.Errorf("cassandra: num_conns %d is negative", c.NumConns))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("cassandra: username and password go together"))
	}
	if len(c.Namespace) > 64 {
		errs = append(errs, fmt.Errorf("cassandra: namespace is %d bytes, at most 64", len(c.Namespace)))
	}
	if c.BatchBytes < 0 || (c.BatchBytes > 0 && c.BatchBytes < 1024) {
		errs = append(errs, fmt.Errorf("cassandra: batch_bytes %d: want at least 1024", c.BatchBytes))
	}
	return errors.Join(errs...)
}

// splitHost splits host:port, the port defaulting to 9042.
func splitHost(h string) (string, int, error) {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return h, 9042, nil
		}
		return "", 0, fmt.Errorf("host %q: %w", h, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("host %q: bad port", h)
	}
	return host, p, nil
}

// replicationCQL turns Config.Replication into the replication map of
// CREATE KEYSPACE.
func replicationCQL(r string) (string, error) {
	if n, err := strconv.Atoi(r); err == nil {
		if n < 1 {
			return "", fmt.Errorf("cassandra: replication %q: factor must be at least 1", r)
		}
		return fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", n), nil
	}
	var b strings.Builder
	b.WriteString("{'class': 'NetworkTopologyStrategy'")
	for part := range strings.SplitSeq(r, ",") {
		dc, n, ok := strings.Cut(strings.TrimSpace(part), ":")
		f, err := strconv.Atoi(n)
		if !ok || !identDC(dc) || err != nil || f < 1 {
			return "", fmt.Errorf("cassandra: replication %q: want N or dc:N,dc:N (N at least 1)", r)
		}
		fmt.Fprintf(&b, ", '%s': %d", dc, f)
	}
	b.WriteString("}")
	return b.String(), nil
}

func identDC(dc string) bool {
	if dc == "" {
		return false
	}
	for _, c := range dc {
		if !(c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// cluster builds the driver's configuration: token-aware routing (over
// DC-aware round robin when LocalDC is set), the configured consistency,
// timeouts and a retry policy that retries only idempotent statements
// (the driver never retries the others).
func (c *Config) cluster() (*gocql.ClusterConfig, gocql.Consistency, error) {
	cons, err := gocql.ParseConsistencyWrapper(c.Consistency)
	if err != nil {
		return nil, 0, err
	}
	hosts := make([]string, 0, len(c.Hosts))
	for _, h := range c.Hosts {
		host, port, err := splitHost(h)
		if err != nil {
			return nil, 0, err
		}
		hosts = append(hosts, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	cl := gocql.NewCluster(hosts...)
	cl.Consistency = cons
	cl.SerialConsistency = gocql.LocalSerial
	cl.ConnectTimeout = c.ConnectTimeout
	cl.Timeout = c.QueryTimeout
	cl.NumConns = c.NumConns
	cl.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: 3, Min: 50 * time.Millisecond, Max: time.Second}
	fallback := gocql.RoundRobinHostPolicy()
	if c.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(c.LocalDC)
	}
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback)
	if c.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	cl.MaxWaitSchemaAgreement = max(60*time.Second, 3*c.QueryTimeout)
	cl.Logger = driverLog{c.Logger.With("component", "gocql")}
	// The driver's write coalescing (wait up to 200 µs for more requests
	// to share a write) made a serial point read (BenchmarkLastSeq)
	// several times slower on the test box, and Apply, whose requests are
	// concurrent anyway, gained nothing from it.
	cl.WriteCoalesceWaitTime = 0
	return cl, cons, nil
}

// driverLog is the driver's StructuredLogger on slog. The driver's info
// is logged at debug level: it is chatty about routine topology events.
type driverLog struct{ l *slog.Logger }

func (d driverLog) log(level slog.Level, msg string, fields []gocql.LogField) {
	ctx := context.Background()
	if !d.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, len(fields))
	for i, f := range fields {
		attrs[i] = slog.Any(f.Name, f.Value.Any())
	}
	d.l.LogAttrs(ctx, level, msg, attrs...)
}

func (d driverLog) Error(msg string, fields ...gocql.LogField)   { d.log(slog.LevelError, msg, fields) }
func (d driverLog) Warning(msg string, fields ...gocql.LogField) { d.log(slog.LevelWarn, msg, fields) }
func (d driverLog) Info(msg string, fields ...gocql.LogField)    { d.log(slog.LevelDebug, msg, fields) }
func (d driverLog) Debug(msg string, fields ...gocql.LogField)   { d.log(slog.LevelDebug, msg, fields) }
