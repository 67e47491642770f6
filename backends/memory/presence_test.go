package memory_test

import (
	"testing"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/presence"
	"github.com/switchboard/switchboard/presence/presencetest"
)

func TestPresenceStore(t *testing.T) {
	presencetest.Run(t, func(t *testing.T) presence.Store { return memory.NewPresenceStore() })
}
