package chat

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Service. The zero value means "defaults"; each
// default is written on its field and filled in by New.
type Config struct {
	// Retention is how long messages and receipts are kept in inboxes.
	// Default 720h (30 days).
	Retention time.Duration `yaml:"retention" help:"how long undelivered messages and receipts are kept (default 720h)"`
	// ExpireInterval is how often expired entries are deleted. Default 1h.
	ExpireInterval time.Duration `yaml:"expire_interval" help:"how often expired entries are deleted (default 1h)"`
	// QueueSize bounds the requests waiting for the committer; past it
	// Submit returns ErrOverloaded. Default 65536.
	QueueSize int `yaml:"queue_size" help:"requests waiting to be committed before clients get 'overloaded' (default 65536)"`
	// MaxBatch is the most requests committed in one store batch. Default 1024.
	MaxBatch int `yaml:"max_batch" help:"most requests committed in one store batch (one fsync) (default 1024)"`
	// CacheEntries bounds each in-memory cache (message metadata, client
	// ids, inbox heads). Default 1,000,000.
	CacheEntries int `yaml:"cache_entries" help:"entries in each in-memory cache (default 1000000)"`
	// MaxBodyBytes is the largest message body accepted. Default 65536.
	MaxBodyBytes int `yaml:"max_body_bytes" help:"largest message body accepted (default 65536)"`
	// MaxGroupMembers is the most members a group may have. Default 1024
	// (WhatsApp's limit).
	MaxGroupMembers int `yaml:"max_group_members" help:"most members a group may have (default 1024)"`
	// GroupCacheEntries bounds the groups whose state (members, receipt
	// watermarks) the committer keeps in memory. Default 100,000.
	GroupCacheEntries int `yaml:"group_cache_entries" help:"groups whose state is kept in memory (default 100000)"`

	// ApplyDepth is how many batches the Service has in a PipelinedStore
	// (Cassandra) at once, from 1 to PipelineDepth: more hides the
	// store's round trips; fewer makes batches larger (requests wait for
	// the batch in flight), which costs the store less per message when
	// several sequencers share it. Default PipelineDepth (3).
	ApplyDepth int `yaml:"apply_depth" help:"batches a sequencer has in a pipelined store (Cassandra) at once, 1 to 3 (default 3)"`

	// Epoch is the writer epoch of the sequencer this Service is (a
	// distributed worker's lease, not configured): stamped on every
	// Delivery, so that gateways drop those of a deposed sequencer once
	// they have heard from its successor. 0: none (one box).
	Epoch uint64 `yaml:"-"`

	// Partitions is how many sequencers share the users' inboxes (a
	// distributed worker's command log partitions, not configured here);
	// 0 or 1: this Service sequences every inbox. Partition is the one
	// this Service sequences, from 0. See Route and Forwarder.
	Partitions int `yaml:"-"`
	Partition  int `yaml:"-"`
}

// WithDefaults returns c with every zero field set to its default: the
// configuration a Service built from c uses.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Retention == 0 {
		c.Retention = 30 * 24 * time.Hour
	}
	if c.ExpireInterval == 0 {
		c.ExpireInterval = time.Hour
	}
	if c.QueueSize == 0 {
		c.QueueSize = 65536
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = 1_000_000
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxGroupMembers == 0 {
		c.MaxGroupMembers = 1024
	}
	if c.GroupCacheEntries == 0 {
		c.GroupCacheEntries = 100_000
	}
	if c.ApplyDepth == 0 {
		c.ApplyDepth = PipelineDepth
	}
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.Retention < 0 || (c.Retention > 0 && c.Retention < time.Minute) {
		errs = append(errs, fmt.Errorf("retention %v: must be at least 1m", c.Retention))
	}
	if c.ExpireInterval < 0 {
		errs = append(errs, fmt.Errorf("expire_interval %v: must be positive", c.ExpireInterval))
	}
	if c.QueueSize < 0 || c.MaxBatch < 0 || c.CacheEntries < 0 || c.MaxBodyBytes < 0 || c.MaxGroupMembers < 0 || c.GroupCacheEntries < 0 {
		errs = append(errs, errors.New("queue_size, max_batch, cache_entries, max_body_bytes, max_group_members and group_cache_entries must not be negative"))
	}
	if c.ApplyDepth < 0 || c.ApplyDepth > PipelineDepth {
		errs = append(errs, fmt.Errorf("apply_depth %d: must be from 1 to %d", c.ApplyDepth, PipelineDepth))
	}
	if c.Partitions < 0 || c.Partition < 0 || (c.Partition > 0 && c.Partition >= c.Partitions) {
		errs = append(errs, fmt.Errorf("partition %d of %d: must be in [0, partitions)", c.Partition, c.Partitions))
	}
	return errors.Join(errs...)
}
