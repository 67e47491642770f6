package gateway

import (
	"strings"
	"testing"
	"time"
)

// TestIdleTimeoutAllowsASweep: timeouts are checked once per sweep, so an
// idle timeout within a sweep of the ping interval (which would close
// connections before they were pinged) is refused.
func TestIdleTimeoutAllowsASweep(t *testing.T) {
	for _, c := range []struct {
		ping, idle time.Duration
		ok         bool
	}{
		{30 * time.Second, 75 * time.Second, true},
		{500 * time.Millisecond, 2 * time.Second, true},
		{100 * time.Millisecond, 300 * time.Millisecond, false},
		{30 * time.Second, 31 * time.Second, false},
	} {
		cfg := Config{PingInterval: c.ping, IdleTimeout: c.idle}
		cfg.setDefaults()
		err := cfg.Validate()
		if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "swept once a second")) {
			t.Errorf("ping %v, idle %v: %v", c.ping, c.idle, err)
		}
	}
}
