package chat

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// warmConcurrency bounds the store reads one batch's warm-up has in
// flight.
const warmConcurrency = 32

// warm reads, in parallel, what the requests of a batch would otherwise
// read one after another on cache misses: the last seq of every user a
// one-to-one send writes to, the client ids of every sender and the
// messages that receipts name. A Service that has just started, or a
// worker that has just taken over a sequencer, has every cache cold; on a
// store a network round trip away, reading those in series while building
// a batch of a thousand requests costs seconds (measured in
// docs/benchmarks.md).
//
// It only fills caches: the build that follows reads exactly what it would
// have read without it. A failed read leaves its entry absent, and the
// build's own read then reports the error on its request. It runs on the
// builder's goroutine, the caches' only user; the reads themselves run on
// up to warmConcurrency goroutines and touch no cache.
func (s *Service) warm(ctx context.Context, reqs []*Request) {
	var (
		heads   []string
		senders []string
		metas   []string
		seen    map[string]struct{}
	)
	want := func(list *[]string, kind byte, key string, cached bool) {
		if cached {
			return
		}
		if seen == nil {
			seen = make(map[string]struct{})
		}
		k := string(kind) + key
		if _, ok := seen[k]; ok {
			return
		}
		seen[k] = struct{}{}
		*list = append(*list, key)
	}
	for _, r := range reqs {
		switch r.Kind {
		case KindSend:
			if s.lister != nil {
				_, ok := s.senders.get(r.From)
				want(&senders, 's', r.From, ok)
			}
			if len(r.Group) == 0 && len(r.To) > 0 {
				to := string(r.To)
				_, ok := s.heads.get(to)
				want(&heads, 'h', to, ok || !s.owns(to))
				if to != r.From {
					_, ok := s.heads.get(r.From)
					want(&heads, 'h', r.From, ok || !s.owns(r.From))
				}
			}
		case KindReceipt:
			for _, id := range r.MsgIDs {
				_, ok := s.metas.get(string(id))
				want(&metas, 'm', string(id), ok)
			}
		}
	}
	n := len(heads) + len(senders) + len(metas)
	if n < 2 {
		return // nothing to overlap
	}
	start := time.Now()
	headVals := make([]uint64, len(heads))
	headOK := make([]bool, len(heads))
	sets := make([]*idSet, len(senders))
	metaVals := make([]MessageMeta, len(metas))
	metaOK := make([]bool, len(metas))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, warmConcurrency) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				switch {
				case i >= n:
					return
				case i < len(heads):
					seq, err := s.store.LastSeq(ctx, heads[i])
					headVals[i], headOK[i] = seq, err == nil
				case i < len(heads)+len(senders):
					j := i - len(heads)
					set := &idSet{h: make(map[uint64]struct{})}
					if err := s.lister.ClientIDs(ctx, senders[j], func(id []byte) {
						set.h[maphash.Bytes(s.seed, id)] = struct{}{}
					}); err == nil {
						sets[j] = set
					}
				default:
					j := i - len(heads) - len(senders)
					m, ok, err := s.store.Message(ctx, metas[j])
					metaVals[j], metaOK[j] = m, ok && err == nil
				}
			}
		})
	}
	wg.Wait()
	for i, u := range heads {
		if headOK[i] {
			s.heads.put(u, headVals[i])
		}
	}
	for i, u := range senders {
		if sets[i] != nil {
			s.senders.put(u, sets[i])
		}
	}
	for i, id := range metas {
		if metaOK[i] {
			s.metas.put(id, metaVals[i])
		}
	}
	s.m.warmReads.Add(float64(n))
	s.m.warmSeconds.Observe(time.Since(start).Seconds())
}
