// Package testserver runs the real switchboard binary for tests, the way a
// user runs it: `switchboard serve --listen ADDR --data-dir DIR` on a
// loopback port, polled on GET /readyz until it is ready, stopped when the
// test ends. It is a normal package so that tests in several packages share
// it; only tests import it.
//
//	func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		srv := testserver.Start(t, testserver.Options{Env: []string{"SWITCHBOARD_GATEWAY_MESSAGE_RATE=1000"}})
//		tok := testserver.Token(t, srv.DataDir(), "alice", "")
//		conn := dial(srv.URL(), tok)
//		...
//	}
//
// # Binary
//
// [Binary] builds cmd/switchboard once per test process into a temporary
// directory; [Main] removes that directory after the tests have run.
//
// # Lifecycle
//
// [Start] registers a cleanup that stops the process: SIGTERM, then SIGKILL
// and a test error if it has not exited within [Options.StopTimeout]. The
// cleanup also fails the test when the process exited while nobody asked it
// to ([Server.Signal], [Server.Stop], [Server.Kill]), and prints the
// process's output (stdout and stderr) when the test failed.
//
// A test may stop a server and start another on the same [Options.DataDir]
// and [Options.Addr]: a restart, after a crash ([Server.Kill]) or a graceful
// shutdown ([Server.Stop]).
package testserver
