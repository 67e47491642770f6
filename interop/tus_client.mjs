#!/usr/bin/env node
// Resumable upload interop scenario, driven by tus-js-client (the tus
// project's own JavaScript client) against the asset API's tus endpoint.
//
// Usage:
//   node tus_client.mjs --assets http://127.0.0.1:PORT/v1/assets --token TOKEN
//                       [--size BYTES] [--chunk BYTES] [--timeout 30]
//
// --assets is the asset API's base (the tus endpoint is its /uploads/),
// --token a bearer token for any user. The scenario:
//
//  1. A first tus.Upload of --size deterministic bytes (default 5 MiB and
//     a bit, so the last chunk is short), in --chunk PATCHes (1 MiB), with
//     filename and filetype metadata, is cut with upload.abort() while its
//     third PATCH is in flight: at its first progress report past the
//     second acknowledged chunk (part of the body handed to node, whether
//     or not it reached the server; or, if node reported the body only
//     once whole, at the PATCH's response).
//  2. A second tus.Upload, given the first one's uploadUrl and no endpoint
//     (so that it cannot quietly start over), finishes it. It must send one
//     HEAD and no POST, PATCH from the offset that HEAD answered, which
//     must hold every byte acknowledged before the cut and no more than
//     were sent, and so resend at most one chunk.
//  3. The response that completed the upload carries Asset-Id and
//     Asset-Sha256 (read through onAfterResponse and onSuccess's
//     lastResponse, which must agree) and the asset's JSON; the upload URL
//     is then gone (404).
//  4. GET /v1/assets/{id} with the token returns the very bytes (sha256).
//
// tus-js-client is loaded from node's usual resolution or, failing that,
// from $INTEROP_NODE_MODULES (a directory holding node_modules/) or the
// repo's .cache/interop/node, where scripts/test-deps.sh installs the
// pinned version.
//
// Prints one "ok" line per step and "PASS ..." at the end; on the first
// failure prints "FAIL <what came back>" to stderr and exits 1.

import { createHash } from 'node:crypto';
import { loadPackage } from './load.mjs';
import { parseArgs } from 'node:util';

const MiB = 1 << 20;
const FILENAME = 'tus-interop.bin';
const FILETYPE = 'application/octet-stream';
// cutAfter is how many chunks the server acknowledges before the cut.
const cutAfter = 2;


const { module: tus, version: tusVersion } = loadPackage('tus-js-client');
const IMPL = `tus-js-client ${tusVersion} (node ${process.version})`;

class Failure extends Error {}

function step(msg) {
  console.log(`ok   ${msg}`);
}

function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

// content returns size deterministic bytes: SHA-256 in counter mode, so
// that no prefix looks like a known file type.
function content(size) {
  const buf = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 32, i++) {
    createHash('sha256').update(`switchboard tus interop ${i}`).digest().copy(buf, off);
  }
  return buf;
}

// within rejects with a Failure naming what if p has not settled in secs.
function within(p, secs, what) {
  let t;
  const late = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Failure(`${what}: not done within ${secs}s`)), secs * 1000);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

// describe renders a tus-js-client error: its DetailedError names the
// request and the response, if any.
function describe(err) {
  return err && err.message ? err.message.replace(/\s+/g, ' ') : String(err);
}

// Trace records the requests of one tus.Upload: "METHOD offset->offset
// status" for each, in order.
class Trace {
  constructor() {
    this.lines = [];
    this.methods = [];
  }

  // hooks returns onBeforeRequest and onAfterResponse options that record.
  hooks(onResponse) {
    return {
      onBeforeRequest: (req) => {
        this.methods.push(req.getMethod());
      },
      onAfterResponse: (req, res) => {
        const from = req.getHeader('Upload-Offset') ?? '';
        const to = res.getHeader('Upload-Offset') ?? '';
        this.lines.push(`${req.getMethod()} ${from}->${to} ${res.getStatus()}`);
        if (onResponse) onResponse(req, res);
      },
    };
  }

  toString() {
    return this.lines.join(', ');
  }
}

// cutUpload starts an upload of data and aborts it at the first progress
// report past cutAfter acknowledged chunks. It resolves with the upload
// URL, the bytes acknowledged and the bytes sent when it was cut.
function cutUpload(args, data) {
  const trace = new Trace();
  return new Promise((resolve, reject) => {
    let acked = 0;
    let chunks = 0;
    const upload = new tus.Upload(data, {
      endpoint: `${args.assets}/uploads/`,
      chunkSize: args.chunk,
      headers: { Authorization: `Bearer ${args.token}` },
      metadata: { filename: FILENAME, filetype: FILETYPE },
      retryDelays: null, // any error is the server's: no retry hides it
      ...trace.hooks(),
      onChunkComplete: (_, accepted) => {
        acked = accepted;
        chunks++;
      },
      onProgress: (sent) => {
        if (chunks < cutAfter || sent <= acked) return;
        upload.abort();
        resolve({ url: upload.url, acked, sent, trace });
      },
      onSuccess: () => reject(new Failure(`the first upload finished: it was not cut (${trace})`)),
      onError: (err) => reject(new Failure(`the first upload failed: ${describe(err)} (${trace})`)),
    });
    upload.start();
  });
}

// resumeUpload finishes the upload at url. It resolves with the first
// progress report (the offset it resumed from), the asset id and sha256
// from the completing response, and that response's JSON.
function resumeUpload(args, data, url) {
  let first;
  let fromHook;
  const trace = new Trace();
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      uploadUrl: url, // and no endpoint: a lost upload is an error, not a new one
      chunkSize: args.chunk,
      headers: { Authorization: `Bearer ${args.token}` },
      metadata: { filename: FILENAME, filetype: FILETYPE },
      retryDelays: null,
      ...trace.hooks((req, res) => {
        const id = res.getHeader('Asset-Id');
        if (id) fromHook = { id, method: req.getMethod(), status: res.getStatus() };
      }),
      onProgress: (sent) => {
        first ??= sent;
      },
      onSuccess: ({ lastResponse: res }) => {
        let body;
        try {
          body = JSON.parse(res.getBody());
        } catch (e) {
          reject(new Failure(`the completing response's body is not JSON (${e.message}): ${res.getBody()}`));
          return;
        }
        resolve({
          first,
          fromHook,
          id: res.getHeader('Asset-Id'),
          hash: res.getHeader('Asset-Sha256'),
          body,
          trace,
        });
      },
      onError: (err) => reject(new Failure(`the resumed upload failed: ${describe(err)} (${trace})`)),
    });
    upload.start();
  });
}

async function scenario(args) {
  const data = content(args.size);
  const want = sha256(data);
  step(`${args.size} bytes to upload (sha256 ${want.slice(0, 16)}…), chunks of ${args.chunk}`);

  const cut = await within(cutUpload(args, data), args.timeout, 'the first upload');
  if (!cut.url) throw new Failure(`the first upload has no URL after the cut (${cut.trace})`);
  step(`first upload cut during PATCH ${cutAfter + 1} with ${cut.acked} bytes acknowledged and ${cut.sent} handed to node: ${cut.url} (${cut.trace})`);

  const done = await within(resumeUpload(args, data, cut.url), args.timeout, 'the resumed upload');
  const { methods } = done.trace;
  const resumed = done.first;
  if (methods[0] !== 'HEAD' || methods.filter((m) => m === 'HEAD').length !== 1 || methods.includes('POST')) {
    throw new Failure(`the resumed upload sent ${methods.join(' ')}: want one HEAD, then PATCHes and no POST (${done.trace})`);
  }
  if (resumed === undefined || resumed < cut.acked || resumed > cut.sent) {
    throw new Failure(`the resumed upload started at ${resumed}: want between the ${cut.acked} bytes acknowledged and the ${cut.sent} sent before the cut (${done.trace})`);
  }
  if (done.trace.lines[0] !== `HEAD ->${resumed} 200`) {
    throw new Failure(`the HEAD got ${done.trace.lines[0]}: want 200 with Upload-Offset ${resumed}, where the upload resumed (${done.trace})`);
  }
  const patch = done.trace.lines.find((l) => l.startsWith('PATCH '));
  if (!patch || !patch.startsWith(`PATCH ${resumed}->`)) {
    throw new Failure(`the resumed upload's first PATCH is ${patch}: want it at offset ${resumed} (${done.trace})`);
  }
  const resent = cut.sent - resumed;
  const total = cut.sent + (args.size - resumed);
  if (resent > args.chunk || total >= 2 * args.size) {
    throw new Failure(`${total} bytes sent in all for ${args.size} (${resent} resent): the resume did not continue the upload`);
  }
  step(`resumed at offset ${resumed} (HEAD, then PATCH from there): ${total} bytes sent in all for ${args.size}, at most ${resent} twice (${done.trace})`);

  if (!done.id) throw new Failure(`the completing response has no Asset-Id header (${done.trace})`);
  if (!done.fromHook || done.fromHook.id !== done.id || done.fromHook.method !== 'PATCH' || done.fromHook.status !== 200) {
    throw new Failure(`onAfterResponse saw Asset-Id ${JSON.stringify(done.fromHook)}, onSuccess's lastResponse ${done.id}: want the same, on a PATCH answered 200`);
  }
  if (done.hash !== want) throw new Failure(`Asset-Sha256 is ${done.hash}, want ${want}`);
  const b = done.body;
  if (b.asset_id !== done.id || b.sha256 !== want || b.size !== args.size || b.name !== FILENAME || b.kind !== 'file') {
    throw new Failure(`the completing response's JSON is ${JSON.stringify(b)}: want asset_id ${done.id}, sha256 ${want}, size ${args.size}, name ${FILENAME}, kind file`);
  }
  step(`the last PATCH answered 200 with Asset-Id ${done.id}, Asset-Sha256 and the asset's JSON (${b.mime}, ${b.kind})`);

  const auth = { Authorization: `Bearer ${args.token}` };
  const head = await fetch(cut.url, { method: 'HEAD', headers: { ...auth, 'Tus-Resumable': '1.0.0' } });
  if (head.status !== 404) throw new Failure(`HEAD of the finished upload answered ${head.status}, want 404`);
  step('the upload URL is gone once the asset exists (HEAD 404)');

  const res = await fetch(`${args.assets}/${done.id}`, { headers: auth });
  if (res.status !== 200) throw new Failure(`GET ${args.assets}/${done.id} answered ${res.status}: ${await res.text()}`);
  const got = Buffer.from(await res.arrayBuffer());
  const gotHash = sha256(got);
  if (got.length !== args.size || gotHash !== want) {
    throw new Failure(`the download has ${got.length} bytes, sha256 ${gotHash}: want ${args.size}, ${want}`);
  }
  step(`GET /v1/assets/${done.id} returned the ${got.length} bytes uploaded (sha256 ${gotHash.slice(0, 16)}…)`);
  return { id: done.id, resumed, sha: gotHash };
}

function parse() {
  const { values } = parseArgs({
    options: {
      assets: { type: 'string' },
      token: { type: 'string' },
      size: { type: 'string', default: String(5 * MiB + 12345) },
      chunk: { type: 'string', default: String(MiB) },
      timeout: { type: 'string', default: '30' },
    },
  });
  for (const k of ['assets', 'token']) {
    if (!values[k]) {
      console.error(`usage: tus_client.mjs --assets URL --token TOKEN [--size BYTES] [--chunk BYTES] [--timeout 30]\nmissing --${k}`);
      process.exit(2);
    }
  }
  values.assets = values.assets.replace(/\/+$/, '');
  for (const k of ['size', 'chunk', 'timeout']) values[k] = Number(values[k]);
  if (!(values.size > (cutAfter + 1) * values.chunk)) {
    console.error(`--size must be over ${cutAfter + 1} chunks: the upload is cut after ${cutAfter}`);
    process.exit(2);
  }
  return values;
}

const args = parse();
console.log(`interop: ${IMPL} against ${args.assets}/uploads/`);
let result;
try {
  result = await scenario(args);
} catch (e) {
  console.error(`FAIL ${e instanceof Failure ? e.message : e.stack}`);
  process.exit(1);
}
console.log(`PASS ${IMPL}: asset ${result.id} sha256 ${result.sha} resumed at ${result.resumed}`);
process.exit(0);
