package chat_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
)

// nopForwarder is a Bus whose forwards go nowhere.
type nopForwarder struct{ recorder }

func (*nopForwarder) Forward(context.Context, int, *chat.Request) error { return nil }

// resultChan completes a request into a channel.
type resultChan chan chat.Result

func (c resultChan) Complete(_ *chat.Request, res chat.Result) { c <- res }

// FuzzForward: whatever a KindForward request's body holds, the Service
// answers it (applied, a duplicate, ErrBadForward or ErrForwardGap) and
// goes on; a forward it applies once is a duplicate the second time.
func FuzzForward(f *testing.F) {
	entry := []byte{1, 1, 'e', 3, 'b', 'o', 'b', 3, 'm', 's', 'g', 5, ',', '"', 'x', '"', '}', 0, 0}
	shared := []byte{1, 1, 'e', 3, 'b', 'o', 'b', 3, 'm', 's', 'g', 0, 2, 'm', '1', 1, 2, 'm', '1', 4, ',', '"', 'y', '}'}
	receipt := []byte{1, 1, 'r', 3, 'b', 'o', 'b', 2, 'm', '1', 3, 0}
	for _, p := range [][]byte{entry, shared, receipt, {1, 0, 0}} {
		f.Add(fwdBodyEpoch(0, 1, 1, p))
		f.Add(fwdBodyEpoch(0, 1, 1, p, p))
	}
	f.Add([]byte{0, 1, 1, 1, 0})
	var once sync.Once
	var svc *chat.Service
	f.Fuzz(func(t *testing.T, body []byte) {
		once.Do(func() {
			var err error
			// Partition 1 of 2: every fuzzed body claims to come from 0.
			svc, err = chat.New(chat.Config{Partitions: 2, Partition: 1}, memory.NewStore(),
				&nopForwarder{recorder{seen: map[string][]uint64{}}}, memory.NewDirectory(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
		})
		do := func() chat.Result {
			done := make(resultChan, 1)
			if err := svc.Submit(&chat.Request{Kind: chat.KindForward, Body: body, Done: done}); err != nil {
				t.Fatal(err)
			}
			return <-done
		}
		res := do()
		switch {
		case res.Err == nil, errors.Is(res.Err, chat.ErrBadForward), errors.Is(res.Err, chat.ErrForwardGap):
		default:
			t.Fatalf("forward %x: %v", body, res.Err)
		}
		if res.Err == nil && !res.Dup {
			if again := do(); again.Err != nil || !again.Dup {
				t.Fatalf("forward %x applied, then again: %+v", body, again)
			}
		}
	})
}
