#!/usr/bin/env node
// Protocol v1 interop scenario, driven by the Node `ws` package.
//
// Usage:
//   node node_client.mjs --url ws://127.0.0.1:PORT/v1/ws --token-a TOKEN --token-b TOKEN
//                        [--user-a alice] [--user-b bob] [--timeout 5] [--idle 0]
//
// --token-a is a token for user A (default id "alice"), --token-b for user B
// (default id "bob"); pass --user-a/--user-b when the tokens name other users.
// B's inbox must be empty at the start (a fresh user B or a fresh data dir):
// the scenario checks that B's first messages are seq 1, 2, 3. A may be
// reused: client ids carry a random per-run suffix.
//
// --idle SECONDS makes B sit silent that long mid-scenario; run the server
// with a ping_interval and idle_timeout below it to check that ws answers the
// server's pings (the server closes a connection that does not with 4001).
//
// `ws` is loaded from node's usual resolution or, failing that, from
// $INTEROP_NODE_MODULES (a directory holding node_modules/ws) or the repo's
// .cache/interop/node, where scripts/test-deps.sh installs the pinned version.
//
// Prints one "ok" line per step; on the first failure prints
// "FAIL <who>: <what came back>" to stderr and exits 1.

import { randomBytes } from 'node:crypto';
import { loadPackage } from './load.mjs';
import { parseArgs } from 'node:util';


const { module: WebSocket, version: wsVersion } = loadPackage('ws');
const IMPL = `node ws ${wsVersion} (node ${process.version})`;

class Failure extends Error {}

function step(msg) {
  console.log(`ok   ${msg}`);
}

function show(v) {
  return JSON.stringify(v);
}

// escapeNonASCII writes every non-ASCII UTF-16 unit as a \uXXXX escape, so
// the server must decode escapes and surrogate pairs.
function escapeNonASCII(json) {
  return json.replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function describeClose(code, reason, error) {
  return `close code ${code} reason ${show(reason)}` + (error ? ` after error: ${error.message}` : '');
}

// Peer is one WebSocket connection speaking protocol v1: frames queue up as
// they arrive and recv takes them in order.
class Peer {
  constructor(name, ws, timeout) {
    this.name = name;
    // The server also stores each message in its sender's inbox, so the
    // sender's other devices see it: recv sets those copies aside here.
    this.user = null;
    this.copies = [];
    this.ws = ws;
    this.timeout = timeout;
    this.queue = [];
    this.waiters = [];
    this.closed = null; // {code, reason} once the close handshake ends
    this.serverPings = 0;
    ws.on('message', (data, isBinary) => this.push({ data, isBinary }));
    ws.on('ping', () => {
      this.serverPings++; // ws answers with a pong itself (autoPong)
    });
    ws.on('error', (e) => {
      this.error = e; // ws then closes (1006 if no close frame came)
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.push(null);
    });
  }

  push(item) {
    const w = this.waiters.shift();
    if (w) w(item);
    else this.queue.push(item);
  }

  // next resolves with the next {data, isBinary}, null once closed, or
  // undefined after ms without a frame.
  next(ms) {
    if (this.queue.length > 0) {
      const item = this.queue[0];
      if (item !== null) this.queue.shift();
      return Promise.resolve(item);
    }
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const w = (item) => {
        clearTimeout(t);
        resolve(item);
      };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        resolve(undefined);
      }, ms);
      this.waiters.push(w);
    });
  }

  send(obj, { asciiOnly = false } = {}) {
    const text = JSON.stringify(obj);
    this.ws.send(asciiOnly ? escapeNonASCII(text) : text);
  }

  async recv(what) {
    const item = await this.next(this.timeout * 1000);
    if (item === undefined) throw new Failure(`${this.name}: no frame within ${this.timeout}s while waiting for ${what}`);
    if (item === null) throw new Failure(`${this.name}: connection closed while waiting for ${what}: ${describeClose(this.closed.code, this.closed.reason, this.error)}`);
    if (item.isBinary) throw new Failure(`${this.name}: got a binary frame while waiting for ${what}`);
    const text = item.data.toString('utf8');
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (e) {
      throw new Failure(`${this.name}: server sent invalid JSON (${e.message}): ${text}`);
    }
    if (frame === null || typeof frame !== 'object' || typeof frame.type !== 'string') {
      throw new Failure(`${this.name}: server frame has no string type: ${text}`);
    }
    if (frame.type === 'msg' && this.user !== null && frame.from === this.user && frame.to !== this.user) {
      this.copies.push(frame);
      return this.recv(what);
    }
    return frame;
  }

  async expect(type, what, fields = {}) {
    const f = await this.recv(what);
    if (f.type !== type) throw new Failure(`${this.name}: want a ${type} frame for ${what}, got ${show(f)}`);
    for (const [k, v] of Object.entries(fields)) {
      if (f[k] !== v) throw new Failure(`${this.name}: ${what}: ${k} = ${show(f[k])}, want ${show(v)} in ${show(f)}`);
    }
    return f;
  }

  // closeHandshake sends a close frame and resolves with the peer's answer.
  async closeHandshake(code, reason) {
    if (!this.closed) {
      this.ws.close(code, reason);
      const end = await this.next(this.timeout * 1000);
      if (end !== null) throw new Failure(`${this.name}: no close frame back within ${this.timeout}s (got ${show(end)})`);
    }
    return this.closed;
  }
}

// open connects with the token in a header or the query string. It resolves
// with a Peer, or rejects with a Failure that names the HTTP status.
function open(name, args, token, byHeader) {
  let url = args.url;
  const opts = { handshakeTimeout: args.timeout * 1000 };
  if (byHeader) opts.headers = { Authorization: `Bearer ${token}` };
  else url += (url.includes('?') ? '&' : '?') + 'access_token=' + encodeURIComponent(token);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    const peer = new Peer(name, ws, args.timeout);
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        const err = new Failure(`${name}: upgrade refused with HTTP ${res.statusCode}: ${body.trim()}`);
        err.status = res.statusCode;
        reject(err);
      });
      req.destroy();
    });
    ws.once('upgrade', (res) => {
      peer.upgradeStatus = res.statusCode;
    });
    ws.once('open', () => resolve(peer));
    ws.once('error', (e) => reject(new Failure(`${name}: cannot connect to ${args.url}: ${e.message}`)));
  });
}

// sync sends sync and reads frames up to synced: exactly wantMsgs of them,
// or any number when wantMsgs is undefined.
async function sync(peer, after, wantMsgs) {
  peer.send({ type: 'sync', after });
  const got = [];
  let f;
  for (;;) {
    if (wantMsgs !== undefined && got.length === wantMsgs) {
      f = await peer.expect('synced', 'the end of sync');
      break;
    }
    f = await peer.recv(`sync frame ${got.length + 1}`);
    if (f.type === 'synced' && wantMsgs === undefined) break;
    got.push(f);
  }
  if (!Number.isInteger(f.seq)) throw new Failure(`${peer.name}: synced.seq is not an integer: ${show(f)}`);
  return { got, seq: f.seq };
}

async function scenario(args) {
  const ua = args['user-a'];
  const ub = args['user-b'];
  // Client ids are unique per run: the server deduplicates on (sender, id),
  // so a rerun with the same A must not collide with an earlier run.
  const run = randomBytes(4).toString('hex');
  const cid = [1, 2, 3].map((i) => `c${i}-${run}`);
  const bodies = [
    'plain ascii then é and 😀 sent as raw UTF-8',
    'é and 😀 sent as JSON \\u escapes (a surrogate pair)',
    'quotes " and \\ backslash,\nnewline, \ttab, \u0001 control, 😀 split across fragments',
  ];

  const a = await open('A', args, args['token-a'], true);
  a.user = ua;
  step(`A (${ua}) connected with Authorization: Bearer (HTTP ${a.upgradeStatus}, extensions ${show(a.ws.extensions)})`);
  const b = await open('B', args, args['token-b'], false);
  step(`B (${ub}) connected with ?access_token= (HTTP ${b.upgradeStatus})`);

  const initial = await sync(a, 0);
  let curA = initial.seq;
  step(`A synced after 0: ${initial.got.length} stored frames, seq ${curA}`);
  const curB = (await sync(b, 0)).seq;
  if (curB !== 0) throw new Failure(`B: synced.seq = ${curB}, want 0: ${ub}'s inbox is not empty (use fresh users or a fresh data dir)`);
  step('B synced after 0: empty inbox, seq 0');

  a.send({ type: 'send', id: cid[0], to: ub, body: bodies[0] });
  a.send({ type: 'send', id: cid[1], to: ub, body: bodies[1] }, { asciiOnly: true });
  // c3 goes out as a fragmented text message (ws's fin option), split
  // inside the 4-byte UTF-8 sequence of 😀: the server must check UTF-8 on
  // the whole message, not per fragment.
  const c3 = Buffer.from(JSON.stringify({ type: 'send', id: cid[2], to: ub, body: bodies[2] }), 'utf8');
  const emoji = c3.indexOf(Buffer.from('😀', 'utf8'));
  a.ws.send(c3.subarray(0, 10), { binary: false, fin: false });
  a.ws.send(c3.subarray(10, emoji + 2), { binary: false, fin: false });
  a.ws.send(c3.subarray(emoji + 2), { binary: false, fin: true });
  step(`A sent 3 messages (${cid[0]} raw UTF-8, ${cid[1]} \\u-escaped, ${cid[2]} in 3 fragments split inside 😀)`);

  const msgIds = [];
  for (let i = 0; i < 3; i++) {
    const ack = await a.expect('ack', `ack ${i + 1}`, { id: cid[i] });
    if (typeof ack.msg_id !== 'string' || ack.msg_id === '') throw new Failure(`A: ack ${cid[i]} has no msg_id: ${show(ack)}`);
    if (!Number.isInteger(ack.ts)) throw new Failure(`A: ack ${cid[i]} ts is not an integer: ${show(ack)}`);
    msgIds.push(ack.msg_id);
  }
  if (new Set(msgIds).size !== 3) throw new Failure(`A: msg_ids are not distinct: ${show(msgIds)}`);
  step(`A got acks ${cid.join(', ')} in order with distinct msg_ids ${show(msgIds)}`);

  for (let i = 0; i < 3; i++) {
    const m = await b.expect('msg', `message ${i + 1}`, { seq: i + 1, msg_id: msgIds[i], from: ua, to: ub });
    if (m.body !== bodies[i]) throw new Failure(`B: message ${i + 1} body = ${show(m.body)}, want ${show(bodies[i])}`);
    if (!Number.isInteger(m.ts)) throw new Failure(`B: message ${i + 1} ts is not an integer: ${show(m)}`);
  }
  step('B got msg seq 1, 2, 3 from A, bodies intact (é, 😀, \\u escapes, quotes, newline)');

  for (const [id, status] of [['r1', 'delivered'], ['r2', 'read']]) {
    b.send({ type: 'receipt', id, status, msg_ids: msgIds });
    await b.expect('ack', `ack for the ${status} receipt`, { id });
  }
  step('B sent delivered and read receipts, both acked');

  // A's inbox holds the copies of its 3 messages (for its other devices),
  // then the receipts.
  for (const [i, status] of ['delivered', 'read'].entries()) {
    const r = await a.expect('receipt', `the ${status} receipt`, { seq: curA + 3 + i + 1, status, by: ub });
    if (show(r.msg_ids) !== show(msgIds)) throw new Failure(`A: ${status} receipt msg_ids = ${show(r.msg_ids)}, want ${show(msgIds)}`);
  }
  const copies = a.copies.map((c) => [c.seq, c.msg_id]);
  const wantCopies = msgIds.map((m, i) => [curA + i + 1, m]);
  if (show(copies) !== show(wantCopies)) throw new Failure(`A: copies of its own messages ${show(copies)}, want ${show(wantCopies)}`);
  step(`A got the copies of its 3 messages, kept in its inbox for its other devices (seq ${curA + 1}-${curA + 3})`);
  curA += 5;
  step(`A got receipt frames delivered (seq ${curA - 1}) and read (seq ${curA}) by ${ub}`);

  const payload = Buffer.from('interop-node');
  const pong = new Promise((resolve) => a.ws.once('pong', resolve));
  a.ws.ping(payload);
  const echoed = await Promise.race([pong, new Promise((r) => setTimeout(() => r(undefined), args.timeout * 1000))]);
  if (echoed === undefined) throw new Failure(`A: no pong to a client ping within ${args.timeout}s`);
  if (!payload.equals(echoed)) throw new Failure(`A: pong payload ${show(echoed.toString())}, want ${show(payload.toString())}`);
  step('A ping with payload answered by a pong carrying the same payload');

  a.send({ type: 'send', id: cid[0], to: ub, body: bodies[0] });
  const again = await a.expect('ack', 'the resent first id', { id: cid[0] });
  if (again.msg_id !== msgIds[0]) throw new Failure(`A: resent ${cid[0]} got msg_id ${show(again.msg_id)}, want the first one ${show(msgIds[0])}`);
  step(`A resent ${cid[0]} and got the same msg_id`);

  a.send({ type: 'no_such_type', id: 'u1' });
  await a.expect('error', 'an unknown type', { id: 'u1', code: 'unknown_type' });
  step('unknown type answered by error unknown_type');

  a.ws.send('{"type":"sync","after":0,}');
  const e = await a.expect('error', 'malformed JSON', { code: 'bad_request' });
  step(`malformed JSON answered by error bad_request (${show(e.message)})`);

  a.send({ type: 'sync', after: curA });
  await a.expect('synced', 'a sync after malformed JSON', { seq: curA });
  step("A's connection still serves requests after the errors");

  if (args.idle > 0) {
    // B says nothing; ws must answer the server's pings or the server
    // closes it. No frame may arrive: the resent first id is not a new
    // message.
    const extra = await b.next(args.idle * 1000);
    if (extra === null) throw new Failure(`B: closed while idle for ${args.idle}s (${describeClose(b.closed.code, b.closed.reason, b.error)}): server pings not answered?`);
    if (extra !== undefined) throw new Failure(`B: unexpected frame while idle (duplicate delivery?): ${extra.data.toString()}`);
    if (b.serverPings === 0) throw new Failure(`B: no server ping in ${args.idle}s idle (is the server's ping_interval shorter?)`);
    step(`B idle ${args.idle}s: ${b.serverPings} server pings answered by ws, still open, no stray frames`);
  }

  let c = await b.closeHandshake(1000, 'bye');
  if (c.code !== 1000) throw new Failure(`B: close handshake: server answered ${describeClose(c.code, c.reason)}, want 1000`);
  step('B closed with a close handshake (server echoed 1000)');

  const b2 = await open('B2', args, args['token-b'], true);
  const { got, seq } = await sync(b2, 0, 3);
  got.forEach((m, i) => {
    if (m.type !== 'msg' || m.seq !== i + 1 || m.msg_id !== msgIds[i] || m.body !== bodies[i]) {
      throw new Failure(`B2: sync frame ${i + 1} = ${show(m)}, want msg seq ${i + 1} msg_id ${msgIds[i]}`);
    }
  });
  if (seq !== 3) throw new Failure(`B2: synced.seq = ${seq}, want 3`);
  step('B reconnected and synced after 0: msg seq 1, 2, 3 then synced seq 3');

  b2.ws.send(Buffer.from([0, 1, 2, 3]), { binary: true });
  const after = await b2.next(args.timeout * 1000);
  if (after === undefined) throw new Failure(`B2: no close within ${args.timeout}s after a binary frame`);
  if (after !== null) throw new Failure(`B2: want close 1003 after a binary frame, got a frame: ${after.data.toString()}`);
  if (b2.closed.code !== 1003) throw new Failure(`B2: binary frame: want close code 1003, got ${describeClose(b2.closed.code, b2.closed.reason, b2.error)}`);
  step('binary frame answered by close 1003');

  try {
    const bad = await open('bad', { ...args }, 'not.a.token', true);
    bad.ws.terminate();
    throw new Failure('a bad token was accepted: the upgrade succeeded');
  } catch (err) {
    if (!(err instanceof Failure) || err.status === undefined) throw err;
    if (err.status !== 401) throw new Failure(`bad token: want HTTP 401, got ${err.status}`);
  }
  step('bad token refused with HTTP 401 before the upgrade');

  c = await a.closeHandshake(1000, 'done');
  if (c.code !== 1000) throw new Failure(`A: close handshake: server answered ${describeClose(c.code, c.reason)}, want 1000`);
  step('A closed with a close handshake (server echoed 1000)');
}

function parse() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      'token-a': { type: 'string' },
      'token-b': { type: 'string' },
      'user-a': { type: 'string', default: 'alice' },
      'user-b': { type: 'string', default: 'bob' },
      timeout: { type: 'string', default: '5' },
      idle: { type: 'string', default: '0' },
    },
  });
  for (const k of ['url', 'token-a', 'token-b']) {
    if (!values[k]) {
      console.error(`usage: node_client.mjs --url URL --token-a TOKEN --token-b TOKEN [--user-a alice] [--user-b bob] [--timeout 5] [--idle 0]\nmissing --${k}`);
      process.exit(2);
    }
  }
  values.timeout = Number(values.timeout);
  values.idle = Number(values.idle);
  return values;
}

const args = parse();
console.log(`interop: ${IMPL} against ${args.url}`);
try {
  await scenario(args);
} catch (e) {
  console.error(`FAIL ${e instanceof Failure ? e.message : e.stack}`);
  process.exit(1);
}
console.log(`PASS ${IMPL}`);
process.exit(0);
