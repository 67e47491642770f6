package presence

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Service. The zero value means "defaults"; each
// default is written on its field and filled in by New.
type Config struct {
	// FlushInterval is how often last seen is written to the Store: each
	// user's at most once per interval, all users changed since the last
	// write in one batch. A kill -9 loses at most the last interval of
	// changes; Close loses none. Default 1m.
	FlushInterval time.Duration `yaml:"last_seen_flush" help:"how often changed last-seen times are written to the store; a crash loses at most this much (default 1m)"`

	// MaxSubscriptions is the most users one connection may watch.
	// Default 1024.
	MaxSubscriptions int `yaml:"max_subscriptions" help:"most users one connection may watch for presence (default 1024)"`

	// MaxContacts is the most contacts one user may have. Default 10,000.
	MaxContacts int `yaml:"max_contacts" help:"most contacts one user may have (default 10000)"`

	// MaxUsers bounds the users kept in memory that need not be: those
	// with no connection, no subscription, no subscriber and nothing left
	// to write. Past it such users are dropped and read again from the
	// Store when next needed. Users that need to be in memory are kept
	// beyond the bound. A user costs about 200 bytes plus its contacts.
	// Default 1,000,000.
	MaxUsers int `yaml:"max_users" help:"idle users whose presence is cached in memory (default 1000000)"`

	// Node, when set, is the gateway node this Service runs on (set by
	// the server, not configured): it writes the last seen of events that
	// came from its own connections only. In a distributed deployment
	// every gateway reads every node's events, for its subscribers; each
	// last seen is written once, by the node whose connection it was, not
	// once per gateway. "" writes every event's (one box).
	Node string `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.FlushInterval == 0 {
		c.FlushInterval = time.Minute
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = 1024
	}
	if c.MaxContacts == 0 {
		c.MaxContacts = 10_000
	}
	if c.MaxUsers == 0 {
		c.MaxUsers = 1_000_000
	}
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("last_seen_flush %v: must be positive", c.FlushInterval))
	}
	if c.MaxSubscriptions < 0 || c.MaxContacts < 0 || c.MaxUsers < 0 {
		errs = append(errs, errors.New("max_subscriptions, max_contacts and max_users must not be negative"))
	}
	return errors.Join(errs...)
}
