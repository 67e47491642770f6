package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/switchboard/switchboard/router"
)

var (
	_ router.Directory   = (*Directory)(nil)
	_ router.EpochSource = (*Directory)(nil)
)

// ErrInvalidRoute is returned (wrapped) by Register and Unregister for a
// route whose device or node holds a NUL byte, the field separator.
var ErrInvalidRoute = errors.New("redis: device or node holds a NUL byte")

// registerScript records a route with its epoch (see router.Route):
// KEYS[1] the user's routes hash, ARGV[1] the field, ARGV[2] the epoch in
// decimal, ARGV[3] the device followed by NUL (the prefix of the device's
// fields). It returns {1, field, epoch, …} with the fields (and epochs) of
// the device's routes it removed, or {0} when a route of the device has a
// larger epoch. Epochs are compared as decimal strings (length, then
// bytes), so every uint64 compares exactly, which Lua's doubles would not.
const registerScript = `
local e = ARGV[2]
local stale, removed = {}, {1}
if e ~= '0' then
  local function less(a, b)
    if #a ~= #b then return #a < #b end
    return a < b
  end
  local p = ARGV[3]
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    if string.sub(f, 1, #p) == p then
      if less(e, v) then return {0} end
      if v ~= '0' and less(v, e) then
        stale[#stale + 1] = f
        removed[#removed + 1] = f
        removed[#removed + 1] = v
      end
    end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
end
redis.call('HSET', KEYS[1], ARGV[1], e)
return removed
`

// epochScript returns max(INCR, the server's clock in microseconds), and
// keeps the counter there: increasing while the key lives, and above
// every epoch handed out before even when the key was lost (Redis
// restarted without persistence, or the key expired), as long as the
// server's clock does not go back. KEYS[1] the counter, ARGV[1] its TTL in
// milliseconds.
const epochScript = `
local v = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if v < now then
  v = now
  redis.call('SET', KEYS[1], string.format('%d', now))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
`

// epochTTL is how long a user's epoch counter outlives its last use; after
// that the server's clock takes over (see epochScript).
const epochTTL = 24 * time.Hour

// Directory is a router.Directory on Redis, with a local cache of routes
// and node liveness kept fresh by Redis's invalidations. Create it with
// New; all methods are safe for concurrent use.
type Directory struct {
	c           rueidis.Client
	cfg         Config
	registerSha string
	register    *rueidis.Lua // for pipelined registers (Keeper)
	epoch       *rueidis.Lua

	cacheHook func(hit bool) // tests: called for each cached read of a Lookup
}

// New connects to Redis and returns a Directory. cfg's zero fields take
// their defaults. It fails if cfg is invalid or Redis cannot be reached.
func New(cfg Config) (*Directory, error) { return newDirectory(cfg, false) }

// newDirectory is New, with the local cache off if noCache (benchmarks).
func newDirectory(cfg Config, noCache bool) (*Directory, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: cfg.Addrs,
		Username:    cfg.Username,
		Password:    cfg.Password,
		// One connection per Redis node: a write and the invalidation it
		// causes in this client's cache arrive on the same connection,
		// in order, which is what makes Register's barrier work.
		PipelineMultiplex: -1,
		DisableCache:      noCache,
	})
	if err != nil {
		return nil, fmt.Errorf("redis directory: connect %v: %w", cfg.Addrs, err)
	}
	sum := sha1.Sum([]byte(registerScript))
	return &Directory{
		c:           c,
		cfg:         cfg,
		registerSha: hex.EncodeToString(sum[:]),
		register:    rueidis.NewLuaScript(registerScript),
		epoch:       rueidis.NewLuaScript(epochScript),
	}, nil
}

// Close closes the connections. Safe for concurrent use; the Directory
// must not be used after.
func (d *Directory) Close() { d.c.Close() }

// Config returns the configuration with defaults filled in.
func (d *Directory) Config() Config { return d.cfg }

func (d *Directory) routesKey(user string) string {
	return d.cfg.KeyPrefix + "rt:{" + user + "}"
}

func (d *Directory) nodeKey(node string) string {
	return d.cfg.KeyPrefix + "node:{" + node + "}"
}

func (d *Directory) epochKey(user string) string {
	return d.cfg.KeyPrefix + "ep:{" + user + "}"
}

// field is a route's field in its user's hash: device NUL node NUL conn.
func field(r router.Route) (string, error) {
	if strings.IndexByte(r.Device, 0) >= 0 || strings.IndexByte(r.Node, 0) >= 0 {
		return "", fmt.Errorf("redis directory: route %q/%q: %w", r.User, r.Device, ErrInvalidRoute)
	}
	return r.Device + "\x00" + r.Node + "\x00" + strconv.FormatUint(r.Conn, 10), nil
}

// parseField splits a field; ok is false for a field this package did not
// write.
func parseField(f string) (device, node string, conn uint64, ok bool) {
	device, rest, ok := strings.Cut(f, "\x00")
	if !ok {
		return "", "", 0, false
	}
	node, c, ok := strings.Cut(rest, "\x00")
	if !ok {
		return "", "", 0, false
	}
	conn, err := strconv.ParseUint(c, 10, 64)
	return device, node, conn, err == nil
}

// writeWithBarrier sends cmd followed by EXISTS of key, on the connection
// that serves key's cached reads, and returns cmd's result. Redis sends the
// invalidations a write causes after its reply; EXISTS's reply comes after
// them, so when this returns this client's cache has dropped key and the
// next Lookup in this process reads what cmd wrote.
func (d *Directory) writeWithBarrier(ctx context.Context, key string, cmd rueidis.Completed) rueidis.RedisResult {
	res := d.c.DoMulti(ctx, cmd, d.c.B().Exists().Key(key).Build())
	if err := res[0].Error(); err != nil {
		return res[0]
	}
	if err := res[1].Error(); err != nil {
		return res[1]
	}
	return res[0]
}

// Register records r in its user's hash, ordered by its epoch (see
// router.Route), and returns router.ErrSuperseded (wrapped) if the device
// has a route with a larger epoch. The route shows in Lookups only while
// its node is alive (see Keeper). It fails, wrapping the client's error,
// when Redis cannot be reached. Safe for concurrent use.
func (d *Directory) Register(ctx context.Context, r router.Route) error {
	_, err := d.RegisterReplacing(ctx, r, nil)
	return err
}

// RegisterReplacing is Register that also appends to replaced the routes
// of r's device it removed (those with a smaller positive epoch, on any
// node, dead or alive), each with its epoch. It is exact: for two ordered
// routes of a device, either the older one's Register is refused with
// router.ErrSuperseded or the newer one's reports it here, so a gateway
// can close the connection its new one replaces wherever it is. Safe for
// concurrent use.
func (d *Directory) RegisterReplacing(ctx context.Context, r router.Route, replaced []router.Route) ([]router.Route, error) {
	f, err := field(r)
	if err != nil {
		return replaced, err
	}
	key := d.routesKey(r.User)
	epoch := strconv.FormatUint(r.Epoch, 10)
	prefix := r.Device + "\x00"
	res := d.writeWithBarrier(ctx, key, d.c.B().Evalsha().Sha1(d.registerSha).Numkeys(1).Key(key).Arg(f, epoch, prefix).Build())
	if e, ok := rueidis.IsRedisErr(res.Error()); ok && e.IsNoScript() {
		res = d.writeWithBarrier(ctx, key, d.c.B().Eval().Script(registerScript).Numkeys(1).Key(key).Arg(f, epoch, prefix).Build())
	}
	reply, err := res.ToArray()
	var n int64
	if err == nil && len(reply) > 0 {
		n, err = reply[0].AsInt64()
	}
	if err != nil {
		return replaced, fmt.Errorf("redis directory: register %q/%q on %q: %w", r.User, r.Device, r.Node, err)
	}
	if n == 0 {
		return replaced, fmt.Errorf("redis directory: register %q/%q epoch %d: %w", r.User, r.Device, r.Epoch, router.ErrSuperseded)
	}
	for i := 1; i+1 < len(reply); i += 2 {
		sf, _ := reply[i].ToString()
		sv, _ := reply[i+1].ToString()
		device, node, conn, ok := parseField(sf)
		e, err := strconv.ParseUint(sv, 10, 64)
		if ok && err == nil {
			replaced = append(replaced, router.Route{User: r.User, Device: device, Node: node, Conn: conn, Epoch: e})
		}
	}
	return replaced, nil
}

// Unregister removes the route with r's device, node and connection id,
// whatever its epoch. It fails, wrapping the client's error, when Redis
// cannot be reached. Safe for concurrent use.
func (d *Directory) Unregister(ctx context.Context, r router.Route) error {
	f, err := field(r)
	if err != nil {
		return err
	}
	key := d.routesKey(r.User)
	if err := d.writeWithBarrier(ctx, key, d.c.B().Hdel().Key(key).Field(f).Build()).Error(); err != nil {
		return fmt.Errorf("redis directory: unregister %q/%q on %q: %w", r.User, r.Device, r.Node, err)
	}
	return nil
}

// maxNodes is how many distinct nodes a Lookup tracks without allocating.
const maxNodes = 8

// Lookup appends to dst the routes of user whose node is alive, in no
// particular order. The user's hash and each node's liveness key are read
// through the local cache (RESP3 client tracking): an unchanged user costs
// no round trip. Fields of dead nodes are deleted on the way (lazily, so
// hashes do not grow). It fails, wrapping the client's error, when Redis
// cannot be reached and the answer is not cached. Safe for concurrent use.
func (d *Directory) Lookup(ctx context.Context, user string, dst []router.Route) ([]router.Route, error) {
	key := d.routesKey(user)
	res := d.c.DoCache(ctx, d.c.B().Hgetall().Key(key).Cache(), d.cfg.CacheTTL)
	if d.cacheHook != nil {
		d.cacheHook(res.IsCacheHit())
	}
	fields, err := res.AsStrMap()
	if err != nil {
		return dst, fmt.Errorf("redis directory: lookup %q: %w", user, err)
	}
	if len(fields) == 0 {
		return dst, nil
	}
	var nodesBuf [maxNodes]string
	nodes := nodesBuf[:0]
	for f := range fields {
		if _, node, _, ok := parseField(f); ok && !slices.Contains(nodes, node) {
			nodes = append(nodes, node)
		}
	}
	var aliveBuf [maxNodes]bool
	alive, err := d.alive(ctx, nodes, aliveBuf[:0])
	if err != nil {
		return dst, fmt.Errorf("redis directory: lookup %q: %w", user, err)
	}
	dead := false
	for f, v := range fields {
		device, node, conn, ok := parseField(f)
		epoch, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			continue
		}
		if !alive[slices.Index(nodes, node)] {
			dead = true
			continue
		}
		dst = append(dst, router.Route{User: user, Device: device, Node: node, Conn: conn, Epoch: epoch})
	}
	if dead {
		d.sweep(ctx, key, fields, nodes, alive)
	}
	return dst, nil
}

// alive appends to dst whether each node's liveness key exists, read
// through the cache.
// Prefetch loads the routes of users into the client-side cache, with one
// pipelined round trip for those not cached yet (router.Prefetcher): a
// batch of deliveries to users whose routes this process has not read yet
// then looks each up locally rather than one round trip after another.
// (The liveness of their nodes, a few keys, is cached by the first
// Lookups.)
func (d *Directory) Prefetch(ctx context.Context, users []string) error {
	if len(users) == 0 {
		return nil
	}
	cmds := make([]rueidis.CacheableTTL, len(users))
	for i, u := range users {
		cmds[i] = rueidis.CT(d.c.B().Hgetall().Key(d.routesKey(u)).Cache(), d.cfg.CacheTTL)
	}
	for _, res := range d.c.DoMultiCache(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("redis directory: prefetch: %w", err)
		}
	}
	return nil
}

// NodesAlive reports, for each of nodes, whether its liveness key is set
// now, read from Redis rather than the cache: whether the node's Keeper
// has beaten within the last three heartbeat intervals.
func (d *Directory) NodesAlive(ctx context.Context, nodes []string) ([]bool, error) {
	if len(nodes) == 0 {
		return nil, nil
	}
	cmds := make(rueidis.Commands, len(nodes))
	for i, n := range nodes {
		cmds[i] = d.c.B().Exists().Key(d.nodeKey(n)).Build()
	}
	out := make([]bool, len(nodes))
	for i, res := range d.c.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return nil, fmt.Errorf("redis directory: liveness of %q: %w", nodes[i], err)
		}
		out[i] = n == 1
	}
	return out, nil
}

func (d *Directory) alive(ctx context.Context, nodes []string, dst []bool) ([]bool, error) {
	if len(nodes) == 1 {
		res := d.c.DoCache(ctx, d.c.B().Get().Key(d.nodeKey(nodes[0])).Cache(), d.cfg.CacheTTL)
		if d.cacheHook != nil {
			d.cacheHook(res.IsCacheHit())
		}
		err := res.Error()
		if err != nil && !rueidis.IsRedisNil(err) {
			return dst, err
		}
		return append(dst, err == nil), nil
	}
	cmds := make([]rueidis.CacheableTTL, len(nodes))
	for i, n := range nodes {
		cmds[i] = rueidis.CT(d.c.B().Get().Key(d.nodeKey(n)).Cache(), d.cfg.CacheTTL)
	}
	for _, res := range d.c.DoMultiCache(ctx, cmds...) {
		if d.cacheHook != nil {
			d.cacheHook(res.IsCacheHit())
		}
		err := res.Error()
		if err != nil && !rueidis.IsRedisNil(err) {
			return dst, err
		}
		dst = append(dst, err == nil)
	}
	return dst, nil
}

// sweep deletes the fields of nodes that a Lookup found dead, after
// checking again, uncached, that they are: a cached "dead" may be older
// than a Keeper's rebuild whose invalidation is still on its way. It is
// best effort: an error leaves the fields for a later Lookup.
//
// A Keeper that rebuilds its node's routes between this check and the
// HDEL loses the routes deleted here; it registers every route again on
// its next heartbeat after a rebuild for that reason (see Keeper.Beat).
func (d *Directory) sweep(ctx context.Context, key string, fields map[string]string, nodes []string, alive []bool) {
	var gone []string
	for i, n := range nodes {
		if alive[i] {
			continue
		}
		if n, err := d.c.Do(ctx, d.c.B().Exists().Key(d.nodeKey(n)).Build()).AsInt64(); err == nil && n == 0 {
			gone = append(gone, nodes[i])
		}
	}
	var drop []string
	for f := range fields {
		if _, node, _, ok := parseField(f); ok && slices.Contains(gone, node) {
			drop = append(drop, f)
		}
	}
	if len(drop) > 0 {
		d.writeWithBarrier(ctx, key, d.c.B().Hdel().Key(key).Field(drop...).Build())
	}
}

// NextEpoch returns a new epoch for a connection of user's device: one
// counter per user (so also increasing across the user's devices), at
// least the Redis server's clock in microseconds, so it stays above the
// epochs of routes that outlived a loss of the counter. It fails, wrapping
// the client's error, when Redis cannot be reached. Safe for concurrent
// use.
func (d *Directory) NextEpoch(ctx context.Context, user, device string) (uint64, error) {
	ttl := strconv.FormatInt(epochTTL.Milliseconds(), 10)
	e, err := d.epoch.Exec(ctx, d.c, []string{d.epochKey(user)}, []string{ttl}).AsUint64()
	if err != nil {
		return 0, fmt.Errorf("redis directory: next epoch %q/%q: %w", user, device, err)
	}
	return e, nil
}
