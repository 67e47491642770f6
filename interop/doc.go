// Package interop checks that Switchboard's WebSocket gateway and protocol
// v1 work with two WebSocket implementations the project did not write:
// Python's websockets (python_client.py) and Node's ws (node_client.mjs),
// and that its resumable uploads work with the reference tus client,
// tus-js-client (tus_client.mjs). The package has no code to import;
// everything is in its tests (load.mjs finds the npm packages).
//
// TestInterop builds cmd/switchboard, starts it on a random loopback port
// with a temporary data dir and short ping_interval/idle_timeout, mints
// tokens with `switchboard token`, and runs both scripts against it. Each
// script plays the same scenario with two users, A (the sender) and B (the
// recipient), and stops at the first step that fails:
//
//   - A connects with Authorization: Bearer, B with ?access_token=.
//   - Both sync after 0; B's inbox is empty (synced seq 0).
//   - A sends 3 messages and gets 3 acks in order with distinct msg_ids.
//     Bodies carry é and 😀 as raw UTF-8 and as \u escapes (a surrogate
//     pair), quotes, backslashes, newline, tab and a control character;
//     the Node client sends one as a fragmented message split inside 😀.
//   - B receives msg frames seq 1, 2, 3 from A with the bodies intact,
//     sends delivered and read receipts (each acked), and A receives both
//     receipt frames at its next seqs.
//   - A resends the first client id and gets the same msg_id; an unknown
//     type gets error unknown_type; malformed JSON gets bad_request; the
//     connection keeps serving afterwards.
//   - B sits silent past the server's idle_timeout: the library must answer
//     the server's pings (seen through ws's "ping" event and websockets'
//     frame log), and no stray frame (a duplicate delivery) arrives.
//   - B closes with a close handshake (the server echoes 1000), reconnects,
//     syncs after 0 and gets exactly msg seq 1, 2, 3 then synced seq 3.
//   - A binary frame gets close 1003; a bad token gets HTTP 401 before the
//     upgrade; A pings with a payload, gets it back in the pong, and closes
//     with a close handshake.
//
// TestTusJSClient uploads 5 MiB with tus-js-client in 1 MiB chunks, cuts
// the upload in its third chunk (upload.abort()), resumes it with a new
// tus.Upload given the uploadUrl (one HEAD, then PATCHes from the server's
// Upload-Offset), and checks the finished asset (Asset-Id, Asset-Sha256,
// then a download) against the bytes it sent.
//
// Users are alice-<impl> and bob-<impl> (alice-python, bob-node, …), so the
// two scripts share one server without sharing an inbox. Run by hand with
// the defaults alice and bob against a fresh data dir.
//
// The tools are not vendored: `bash scripts/test-deps.sh` installs pinned
// versions under .cache/interop/ (or $INTEROP_CACHE). The test fails,
// never skips, when they are missing, and says to run that script.
package interop
