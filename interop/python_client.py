#!/usr/bin/env python3
"""Protocol v1 interop scenario, driven by the Python `websockets` package.

Usage:
    python_client.py --url ws://127.0.0.1:PORT/v1/ws --token-a TOKEN --token-b TOKEN
                     [--user-a alice] [--user-b bob] [--timeout 5] [--idle 0]

--token-a is a token for user A (default id "alice"), --token-b for user B
(default id "bob"); pass --user-a/--user-b when the tokens name other users.
B's inbox must be empty at the start (a fresh user B or a fresh data dir):
the scenario checks that B's first messages are seq 1, 2, 3. A may be reused:
client ids carry a random per-run suffix.

--idle SECONDS makes B sit silent that long mid-scenario; run the server with
a ping_interval and idle_timeout below it to check that websockets answers
the server's pings (the server closes a connection that does not with 4001).

Prints one "ok" line per step; on the first failure prints "FAIL <who>:
<what came back>" to stderr and exits 1. Needs websockets >= 14 (the asyncio API);
scripts/test-deps.sh installs the pinned version.
"""

import argparse
import asyncio
import json
import logging
import secrets
import sys
from urllib.parse import quote

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode

IMPL = f"python websockets {websockets.__version__}"


class Failure(Exception):
    """A step did not get what protocol v1 promises."""


class FrameLog(logging.Handler):
    """Counts control frames that websockets logs at debug level, so the
    scenario can see the library answer the server's pings."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.counts = {}

    def emit(self, record):
        if record.msg in ("< %s", "> %s") and record.args:
            frame = record.args[0]
            opcode = getattr(frame, "opcode", None)
            if opcode in (Opcode.PING, Opcode.PONG, Opcode.CLOSE):
                key = record.msg[0] + " " + opcode.name
                self.counts[key] = self.counts.get(key, 0) + 1

    def count(self, key):
        return self.counts.get(key, 0)


def frame_logger(name):
    log = logging.getLogger(f"interop.{name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = FrameLog()
    log.addHandler(handler)
    return log, handler


class Peer:
    """One WebSocket connection speaking protocol v1."""

    def __init__(self, name, ws, frames, timeout):
        self.name, self.ws, self.frames, self.timeout = name, ws, frames, timeout
        # The server also stores each message in its sender's inbox, so the
        # sender's other devices see it: recv sets those copies aside here.
        self.user, self.copies = None, []

    async def send(self, obj, ensure_ascii=False):
        await self.ws.send(json.dumps(obj, ensure_ascii=ensure_ascii))

    async def send_raw(self, text):
        await self.ws.send(text)

    async def recv(self, what):
        try:
            data = await asyncio.wait_for(self.ws.recv(), self.timeout)
        except TimeoutError:
            raise Failure(f"{self.name}: no frame within {self.timeout}s while waiting for {what}")
        except ConnectionClosed as e:
            raise Failure(f"{self.name}: connection closed while waiting for {what}: {describe_close(e)}")
        if not isinstance(data, str):
            raise Failure(f"{self.name}: got a binary frame ({len(data)} bytes) while waiting for {what}")
        try:
            frame = json.loads(data)
        except json.JSONDecodeError as e:
            raise Failure(f"{self.name}: server sent invalid JSON ({e}): {data!r}")
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise Failure(f"{self.name}: server frame has no string type: {data!r}")
        if frame["type"] == "msg" and self.user is not None and frame.get("from") == self.user and frame.get("to") != self.user:
            self.copies.append(frame)
            return await self.recv(what)
        return frame

    async def expect(self, type_, what, **fields):
        frame = await self.recv(what)
        if frame["type"] != type_:
            raise Failure(f"{self.name}: want a {type_} frame for {what}, got {json.dumps(frame, ensure_ascii=False)}")
        for k, v in fields.items():
            if frame.get(k) != v:
                raise Failure(f"{self.name}: {what}: {k} = {frame.get(k)!r}, want {v!r} in {json.dumps(frame, ensure_ascii=False)}")
        return frame


def describe_close(e):
    rcvd = e.rcvd
    if rcvd is None:
        return "no close frame received (TCP closed)"
    return f"close code {rcvd.code} reason {rcvd.reason!r}"


def step(msg):
    print(f"ok   {msg}", flush=True)


async def open_peer(name, args, token, by_header, keepalive):
    log, frames = frame_logger(name)
    url, headers = args.url, None
    if by_header:
        headers = {"Authorization": f"Bearer {token}"}
    else:
        url += ("&" if "?" in url else "?") + "access_token=" + quote(token, safe="")
    try:
        ws = await asyncio.wait_for(
            connect(
                url,
                additional_headers=headers,
                ping_interval=0.5 if keepalive else None,
                ping_timeout=args.timeout,
                close_timeout=args.timeout,
                logger=log,
            ),
            args.timeout,
        )
    except InvalidStatus as e:
        raise Failure(f"{name}: upgrade refused with HTTP {e.response.status_code}")
    except (OSError, TimeoutError) as e:
        raise Failure(f"{name}: cannot connect to {args.url}: {e!r}")
    return Peer(name, ws, frames, args.timeout)


async def sync(peer, after, want_msgs=None):
    """Sends sync and reads frames up to synced: exactly want_msgs of them,
    or any number when want_msgs is None. Returns (frames, synced seq)."""
    await peer.send({"type": "sync", "after": after})
    got = []
    while want_msgs is None or len(got) < want_msgs:
        f = await peer.recv(f"sync frame {len(got) + 1}")
        if f["type"] == "synced" and want_msgs is None:
            break
        got.append(f)
    else:
        f = await peer.expect("synced", "the end of sync")
    if not isinstance(f.get("seq"), int):
        raise Failure(f"{peer.name}: synced.seq is not an integer: {f!r}")
    return got, f["seq"]


async def scenario(args):
    ua, ub = args.user_a, args.user_b
    # Client ids are unique per run: the server deduplicates on (sender, id),
    # so a rerun with the same A must not collide with an earlier run.
    run = secrets.token_hex(4)
    cid = [f"c{i}-{run}" for i in (1, 2, 3)]
    bodies = [
        "plain ascii then é and 😀 sent as raw UTF-8",
        "é and 😀 sent as JSON \\u escapes (a surrogate pair)",
        'quotes " and \\ backslash,\nnewline, \ttab, \u0001 control, </script>',
    ]
    # Message 2 goes out with ensure_ascii, so the server decodes \u00e9 and
    # \ud83d\ude00; the others carry raw UTF-8.
    ascii_escaped = [False, True, False]

    a = await open_peer("A", args, args.token_a, by_header=True, keepalive=True)
    a.user = ua
    step(f"A ({ua}) connected with Authorization: Bearer (keepalive pings every 0.5s)")
    b = await open_peer("B", args, args.token_b, by_header=False, keepalive=False)
    step(f"B ({ub}) connected with ?access_token= (no client pings)")

    old, cur_a = await sync(a, 0)
    step(f"A synced after 0: {len(old)} stored frames, seq {cur_a}")
    _, cur_b = await sync(b, 0)
    if cur_b != 0:
        raise Failure(f"B: synced.seq = {cur_b}, want 0: {ub}'s inbox is not empty (use fresh users or a fresh data dir)")
    step("B synced after 0: empty inbox, seq 0")

    for i, body in enumerate(bodies):
        await a.send({"type": "send", "id": cid[i], "to": ub, "body": body}, ensure_ascii=ascii_escaped[i])
    step(f"A sent 3 messages ({', '.join(cid)})")

    msg_ids = []
    for i in range(3):
        ack = await a.expect("ack", f"ack {i + 1}", id=cid[i])
        if not isinstance(ack.get("msg_id"), str) or not ack["msg_id"]:
            raise Failure(f"A: ack {cid[i]} has no msg_id: {ack!r}")
        if not isinstance(ack.get("ts"), int):
            raise Failure(f"A: ack {cid[i]} ts is not an integer: {ack!r}")
        msg_ids.append(ack["msg_id"])
    if len(set(msg_ids)) != 3:
        raise Failure(f"A: msg_ids are not distinct: {msg_ids}")
    step(f"A got acks {', '.join(cid)} in order with distinct msg_ids {msg_ids}")

    for i in range(3):
        m = await b.expect("msg", f"message {i + 1}", seq=i + 1, msg_id=msg_ids[i], to=ub)
        if m.get("from") != ua:
            raise Failure(f"B: message {i + 1} from = {m.get('from')!r}, want {ua!r}")
        if m.get("body") != bodies[i]:
            raise Failure(f"B: message {i + 1} body = {m.get('body')!r}, want {bodies[i]!r}")
        if not isinstance(m.get("ts"), int):
            raise Failure(f"B: message {i + 1} ts is not an integer: {m!r}")
    step("B got msg seq 1, 2, 3 from A, bodies intact (é, 😀, \\u escapes, quotes, newline)")

    for rid, status in (("r1", "delivered"), ("r2", "read")):
        await b.send({"type": "receipt", "id": rid, "status": status, "msg_ids": msg_ids})
        await b.expect("ack", f"ack for the {status} receipt", id=rid)
    step("B sent delivered and read receipts, both acked")

    # A's inbox holds the copies of its 3 messages (for its other devices),
    # then the receipts.
    for i, status in enumerate(("delivered", "read")):
        r = await a.expect("receipt", f"the {status} receipt", seq=cur_a + 3 + i + 1, status=status, by=ub)
        if r.get("msg_ids") != msg_ids:
            raise Failure(f"A: {status} receipt msg_ids = {r.get('msg_ids')!r}, want {msg_ids!r}")
    copies = [(c.get("seq"), c.get("msg_id")) for c in a.copies]
    if copies != [(cur_a + i + 1, m) for i, m in enumerate(msg_ids)]:
        raise Failure(f"A: copies of its own messages {copies!r}, want seqs {cur_a + 1}.. with {msg_ids!r}")
    step(f"A got the copies of its 3 messages, kept in its inbox for its other devices (seq {cur_a + 1}-{cur_a + 3})")
    cur_a += 5
    step(f"A got receipt frames delivered (seq {cur_a - 1}) and read (seq {cur_a}) by {ub}")

    try:
        latency = await asyncio.wait_for(await a.ws.ping(b"interop-py"), args.timeout)
    except TimeoutError:
        raise Failure(f"A: no pong to a client ping within {args.timeout}s")
    step(f"A ping with payload answered by a pong ({latency * 1000:.1f} ms)")

    await a.send({"type": "send", "id": cid[0], "to": ub, "body": bodies[0]})
    ack = await a.expect("ack", "the resent first id", id=cid[0])
    if ack.get("msg_id") != msg_ids[0]:
        raise Failure(f"A: resent {cid[0]} got msg_id {ack.get('msg_id')!r}, want the first one {msg_ids[0]!r}")
    step(f"A resent {cid[0]} and got the same msg_id")

    await a.send({"type": "no_such_type", "id": "u1"})
    await a.expect("error", "an unknown type", id="u1", code="unknown_type")
    step("unknown type answered by error unknown_type")

    await a.send_raw('{"type":"send","id":"m1","to":')
    e = await a.expect("error", "malformed JSON", code="bad_request")
    step(f"malformed JSON answered by error bad_request ({e.get('message')!r})")

    await a.send({"type": "sync", "after": cur_a})
    await a.expect("synced", "a sync after malformed JSON", seq=cur_a)
    step("A's connection still serves requests after the errors")

    if args.idle > 0:
        # B says nothing; websockets must answer the server's pings or the
        # server closes it. No frame may arrive: the resent first id is not a new
        # message.
        try:
            extra = await asyncio.wait_for(b.ws.recv(), args.idle)
            raise Failure(f"B: unexpected frame while idle (duplicate delivery?): {extra!r}")
        except TimeoutError:
            pass
        except ConnectionClosed as e:
            raise Failure(f"B: closed while idle for {args.idle}s ({describe_close(e)}): server pings not answered?")
        pings, pongs = b.frames.count("< PING"), b.frames.count("> PONG")
        if pings == 0:
            raise Failure(f"B: no server ping in {args.idle}s idle (is the server's ping_interval shorter?)")
        if pongs < pings:
            raise Failure(f"B: websockets answered {pongs} of {pings} server pings")
        step(f"B idle {args.idle}s: {pings} server pings, {pongs} pongs, no stray frames")

    await b.ws.close(1000, "bye")
    if b.ws.close_code != 1000:
        raise Failure(f"B: close handshake: server answered code {b.ws.close_code} {b.ws.close_reason!r}, want 1000")
    step("B closed with a close handshake (server echoed 1000)")

    b2 = await open_peer("B2", args, args.token_b, by_header=True, keepalive=False)
    got, seq = await sync(b2, 0, 3)
    for i, m in enumerate(got):
        if m.get("type") != "msg" or m.get("seq") != i + 1 or m.get("msg_id") != msg_ids[i] or m.get("body") != bodies[i]:
            raise Failure(f"B2: sync frame {i + 1} = {json.dumps(m, ensure_ascii=False)}, want msg seq {i + 1} msg_id {msg_ids[i]}")
    if seq != 3:
        raise Failure(f"B2: synced.seq = {seq}, want 3")
    step("B reconnected and synced after 0: msg seq 1, 2, 3 then synced seq 3")

    await b2.ws.send(b"\x00\x01binary")
    try:
        extra = await asyncio.wait_for(b2.ws.recv(), args.timeout)
        raise Failure(f"B2: want close 1003 after a binary frame, got a frame: {extra!r}")
    except TimeoutError:
        raise Failure(f"B2: no close within {args.timeout}s after a binary frame")
    except ConnectionClosed as e:
        if e.rcvd is None or e.rcvd.code != 1003:
            raise Failure(f"B2: binary frame: want close code 1003, got {describe_close(e)}")
    step("binary frame answered by close 1003")

    try:
        bad = await asyncio.wait_for(
            connect(args.url, additional_headers={"Authorization": "Bearer not.a.token"}), args.timeout
        )
        await bad.close()
        raise Failure("a bad token was accepted: the upgrade succeeded")
    except InvalidStatus as e:
        if e.response.status_code != 401:
            raise Failure(f"bad token: want HTTP 401, got {e.response.status_code}")
    step("bad token refused with HTTP 401 before the upgrade")

    await a.ws.close(1000, "done")
    if a.ws.close_code != 1000:
        raise Failure(f"A: close handshake: server answered code {a.ws.close_code} {a.ws.close_reason!r}, want 1000")
    step("A closed with a close handshake (server echoed 1000)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="ws://HOST:PORT/v1/ws")
    p.add_argument("--token-a", required=True, help="token for user A")
    p.add_argument("--token-b", required=True, help="token for user B (empty inbox)")
    p.add_argument("--user-a", default="alice", help="user id in --token-a (default alice)")
    p.add_argument("--user-b", default="bob", help="user id in --token-b (default bob)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each frame (default 5)")
    p.add_argument("--idle", type=float, default=0.0, help="seconds B stays silent to see server pings (default 0: skip)")
    args = p.parse_args()
    print(f"interop: {IMPL} against {args.url}", flush=True)
    try:
        asyncio.run(scenario(args))
    except Failure as e:
        print(f"FAIL {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"PASS {IMPL}", flush=True)


if __name__ == "__main__":
    main()
