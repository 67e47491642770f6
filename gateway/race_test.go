package gateway

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestOnlineOfflineRace is the proof of docs/design.md's argument: the
// recipient connects at a random moment inside a burst of sends, registers
// its route, syncs from 0 and listens live. After dedupe by seq, every
// acked message arrives exactly once, in order, with no seq gap, and no
// polling is involved anywhere.
func TestOnlineOfflineRace(t *testing.T) {
	trials := 1000
	if testing.Short() {
		trials = 100
	}
	const burst = 20
	s := startServer(t, Config{MessageRate: 1e6, MessageBurst: 1e6}, nil)
	sender := s.dial(t, "ok:sender")
	for trial := range trials {
		recipient := fmt.Sprintf("r%d", trial)
		connectAt := rand.IntN(burst + 1)
		var wg sync.WaitGroup
		var got []frame
		var rerr error
		for i := range burst {
			if i == connectAt {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, rerr = receiveAll(s, recipient, burst)
				}()
			}
			sender.send(map[string]any{"type": "send", "id": fmt.Sprint(trial, "-", i), "to": recipient, "body": fmt.Sprint(i)})
		}
		if connectAt == burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, rerr = receiveAll(s, recipient, burst)
			}()
		}
		acked := make(map[string]int) // msg_id -> send index
		for len(acked) < burst {
			f := sender.read()
			if f.Type != "ack" {
				t.Fatalf("trial %d: sender got %+v", trial, f)
			}
			var i int
			fmt.Sscanf(f.ID, fmt.Sprint(trial, "-%d"), &i)
			acked[f.MsgID] = i
		}
		wg.Wait()
		if rerr != nil {
			t.Fatalf("trial %d (connect at %d): %v", trial, connectAt, rerr)
		}
		seen := map[string]bool{}
		for k, f := range got {
			if f.Seq != uint64(k+1) {
				t.Fatalf("trial %d: entry %d has seq %d: order or gap broken", trial, k, f.Seq)
			}
			if seen[f.MsgID] {
				t.Fatalf("trial %d: msg %s delivered twice under different seqs", trial, f.MsgID)
			}
			seen[f.MsgID] = true
			if i, ok := acked[f.MsgID]; !ok || i != k {
				t.Fatalf("trial %d: seq %d carries %s (send %d, acked=%v); want send %d", trial, f.Seq, f.MsgID, i, ok, k)
			}
		}
	}
}

// receiveAll connects as user, syncs from 0 and collects msg frames,
// deduped by seq, until it has n of them.
func receiveAll(s *server, user string, n int) ([]frame, error) {
	conn, err := s.tryDial("ok:" + user)
	if err != nil {
		return nil, err
	}
	c := &wsClient{t: nil, conn: conn}
	defer conn.Close()
	if err := writeJSON(conn, map[string]any{"type": "sync", "after": 0}); err != nil {
		return nil, err
	}
	// The client rule of docs/protocol.md: apply only the frame that
	// follows the cursor; anything else comes again through the sync.
	var got []frame
	var cursor uint64
	for len(got) < n {
		f, err := c.next()
		if err != nil {
			return got, fmt.Errorf("after %d messages: %w", len(got), err)
		}
		if f.Type != "msg" || f.Seq != cursor+1 {
			continue
		}
		cursor = f.Seq
		got = append(got, f)
	}
	return got, nil
}
