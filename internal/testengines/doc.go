// Package testengines runs the real engines of the distributed backends for
// tests: Redis, Kafka (KRaft, one combined broker and controller) and
// Cassandra, each a real server process on free loopback ports with its
// data in a temporary directory, polled until it is ready, stopped at the
// end. `make deps` (scripts/engines-deps.sh) installs them: Debian's
// redis-server, and Kafka's and Cassandra's jars from Maven Central in
// .cache/kafka/lib and .cache/cassandra/lib; they run on the java on PATH
// (17). A server that cannot start fails the test with the tail of its
// log; it never skips it.
//
//	func TestMain(m *testing.M) { os.Exit(testengines.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		r := testengines.Redis(t)     // r.Addr: 127.0.0.1:PORT
//		k := testengines.Kafka(t)     // k.Bootstrap: 127.0.0.1:PORT
//		c := testengines.Cassandra(t) // c.Host, c.Port: the CQL port
//		...
//	}
//
// # Shared and private servers
//
// [Redis], [Kafka] and [Cassandra] return the test package's shared server
// of that kind, started the first time a test asks for it (Kafka takes
// about 5 s, Cassandra about 15 s on an idle 2-core box) and stopped by
// [Run] after every test has run. Tests sharing one server keep to their
// own keys, topics and keyspaces, and must not stop it.
//
// [NewRedis], [NewKafka] and [NewCassandra] start a private server that
// the test owns: it may stop it ([Process.Stop], SIGTERM), crash it
// ([Process.Kill], SIGKILL) and start it again on the same ports and data
// ([Process.Start]), as fault tests do. It is stopped when the test ends.
//
// # Logs
//
// Each server writes its log to NAME.log in its directory. When a test
// failed (for a shared server: when any test of the package failed) the
// directory is kept and its path printed; otherwise it is removed.
//
// All functions and methods are safe for concurrent use; the functions
// that take a testing.TB must be called from the test's goroutine.
package testengines
