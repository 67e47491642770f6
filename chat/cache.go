package chat

// genCache is a bounded map with two generations: lookups check the
// current generation, then the previous one (promoting hits); when the
// current generation is full it becomes the previous one and the old previous
// one is dropped. It keeps the hot set in memory at the cost of at most two
// maps of size limit, with no per-entry bookkeeping. Not safe for concurrent
// use.
type genCache[K comparable, V any] struct {
	limit    int
	cur, old map[K]V
}

func newGenCache[K comparable, V any](limit int) *genCache[K, V] {
	return &genCache[K, V]{limit: limit, cur: make(map[K]V), old: make(map[K]V)}
}

func (c *genCache[K, V]) get(k K) (V, bool) {
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	if ok {
		c.put(k, v)
	}
	return v, ok
}

func (c *genCache[K, V]) put(k K, v V) {
	if len(c.cur) >= c.limit {
		c.old, c.cur = c.cur, make(map[K]V, c.limit)
	}
	c.cur[k] = v
}

func (c *genCache[K, V]) del(k K) {
	delete(c.cur, k)
	delete(c.old, k)
}
