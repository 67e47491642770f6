package redis

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults of Config, filled in by New for zero fields.
const (
	DefaultCacheTTL          = time.Minute
	DefaultKeyPrefix         = "sb:"
	DefaultHeartbeatInterval = time.Second
)

// livenessIntervals is how many heartbeat intervals a node's liveness key
// outlives its last refresh: a node is dead after missing about three.
const livenessIntervals = 3

// Config configures a Directory. The zero value of every field but Addrs
// means its default.
type Config struct {
	// Addrs are the addresses (host:port) of one Redis server or of seeds
	// of a Redis Cluster (detected on connect). Required.
	Addrs []string `yaml:"addrs" help:"Redis server, or Redis Cluster seeds, host:port (required)"`

	// Username and Password authenticate (AUTH); both optional.
	Username string `yaml:"username" help:"AUTH user (optional)"`
	Password string `yaml:"password" help:"AUTH password (optional)"`

	// CacheTTL bounds how long a Lookup may answer from the local cache
	// without asking Redis, for a user's routes and for a node's liveness.
	// Entries are invalidated by Redis when their key changes, so this is
	// only a safety bound (against a lost invalidation), not the freshness
	// of the cache. Default 1 minute (DefaultCacheTTL).
	CacheTTL time.Duration `yaml:"cache_ttl" help:"safety bound on a cached lookup; entries are invalidated by Redis (default 1m)"`

	// KeyPrefix starts every key the Directory writes. It must not hold
	// '{' or '}' (the user's and node's hash tags follow it). Default "sb:"
	// (DefaultKeyPrefix).
	KeyPrefix string `yaml:"key_prefix" help:"prefix of every key (default sb:)"`

	// HeartbeatInterval is how often a Keeper refreshes its node's
	// liveness key, which lives for 3 intervals: a node that misses about
	// three heartbeats is dead and its routes vanish from Lookups. It is
	// also how long routes take to come back after Redis lost them.
	// Default 1 second (DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" help:"how often a gateway refreshes its liveness; routes come back this long after Redis lost them (default 1s)"`
}

func (c *Config) setDefaults() {
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
}

// Validate reports what is wrong with c, all problems joined; zero fields
// are valid (they mean their defaults) except Addrs.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("redis: addrs: at least one address is required"))
	}
	for _, a := range c.Addrs {
		if a == "" {
			errs = append(errs, errors.New("redis: addrs: empty address"))
		}
	}
	if c.CacheTTL < 0 {
		errs = append(errs, fmt.Errorf("redis: cache_ttl %v is negative", c.CacheTTL))
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("redis: key_prefix %q holds a brace", c.KeyPrefix))
	}
	if c.HeartbeatInterval < 0 || (c.HeartbeatInterval > 0 && c.HeartbeatInterval < time.Millisecond) {
		errs = append(errs, fmt.Errorf("redis: heartbeat_interval %v: want at least 1ms", c.HeartbeatInterval))
	}
	return errors.Join(errs...)
}
