package client

import (
	"testing"

	"github.com/switchboard/switchboard/client/internal/fakeserver"
)

// The fake server lives in internal/fakeserver so that chatcli's tests use
// it too. It implements protocol v1 in memory (acks, idempotent sends,
// delivery between users, receipts, sync with seqs) with hooks to refuse
// handshakes, kill connections mid-burst, drop, replay or purge inbox
// entries, and answer with error codes.
type fakeServer = fakeserver.Server

type fakeFrame = fakeserver.Frame

func newFakeServer(t testing.TB) *fakeServer { return fakeserver.New(t) }
