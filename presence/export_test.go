package presence

// FlushNow runs one flush of last seen on s's flusher and waits for it.
func FlushNow(s *Service) error { return s.flushNow() }

// Users returns how many users s holds in memory.
func Users(s *Service) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.users)
		sh.mu.Unlock()
	}
	return n
}
