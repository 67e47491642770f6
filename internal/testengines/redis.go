package testengines

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const (
	redisReady = 20 * time.Second
	redisStop  = 10 * time.Second
)

// RedisServer is a redis-server on a loopback port, without persistence
// (no RDB snapshots, no AOF): a restart starts empty.
type RedisServer struct {
	*Process
	// Addr is host:port.
	Addr string
}

var sharedRedis lazy[*RedisServer]

// Redis returns the test package's shared Redis, started on first use.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return sharedRedis.get(t, func() (*RedisServer, *Process, error) { return startRedis(nil) })
}

// NewRedis starts a Redis that the test owns, with extra redis-server
// arguments after the defaults (for example "--appendonly", "yes"). It is
// stopped when the test ends.
func NewRedis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	return own(t, func() (*RedisServer, *Process, error) { return startRedis(extra) })
}

// startRedis starts a Redis. It returns the server and its process, or an
// error and, if it got as far as making one, the process whose directory
// holds the log. startKafka and startCassandra do the same.
func startRedis(extra []string) (*RedisServer, *Process, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, fmt.Errorf("redis-server not found on PATH (%v): run `make deps` (scripts/engines-deps.sh)", err)
	}
	p, err := newProcess("redis", redisReady, redisStop)
	if err != nil {
		return nil, nil, err
	}
	r := &RedisServer{Process: p}
	p.ready = func(*Process, int64) error { return redisPing(r.Addr) }
	err = launch(p, func(p *Process) error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		data := filepath.Join(p.dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			return err
		}
		p.argv = append([]string{bin,
			"--bind", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
			"--dir", data, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--protected-mode", "no", "--logfile", ""}, extra...)
		return nil
	})
	return r, p, err
}

// redisPing is ready once addr answers PING with +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("%w: PING answered %q", errNotReady, line)
	}
	return nil
}
