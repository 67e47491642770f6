#!/usr/bin/env bash
# Upload and download throughput of one large file through the binary (the
# asset API on local disk, or with --s3 on the Versity S3 Gateway that
# `make deps` installs in .cache/bin), the server's CPU per GB and its RSS
# meanwhile; with --s3 also the S3 server's CPU.
# Usage, from the repository root: scripts/assetbench.sh [--s3] [size in MiB, default 1024]
set -eu
S3=0
if [ "${1:-}" = "--s3" ]; then S3=1; shift; fi
SIZE_MB=${1:-1024}
D=${TMPDIR:-/tmp}/switchboard-assetbench
BIN=$D.bin
go build -o "$BIN" ./cmd/switchboard
rm -rf $D; mkdir -p $D
head -c $((SIZE_MB*1024*1024)) /dev/urandom > $D/file.bin
sync # on disk before the clock starts: its writeback must not compete with the transfer
GW=
if [ $S3 = 1 ]; then
  VGW=${SWITCHBOARD_VERSITYGW:-.cache/bin/versitygw}
  [ -x "$VGW" ] || { echo "no $VGW: run make deps" >&2; exit 1; }
  mkdir -p $D/s3
  "$VGW" --access benchkey --secret benchsecret --port 127.0.0.1:18952 --quiet posix $D/s3 > $D/s3.log 2>&1 &
  GW=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18952/ && break; sleep 0.1; done
  export SWITCHBOARD_BLOBS_BACKEND=s3 SWITCHBOARD_BLOBS_S3_ENDPOINT=127.0.0.1:18952 SWITCHBOARD_BLOBS_S3_BUCKET=bench \
    SWITCHBOARD_BLOBS_S3_ACCESS_KEY=benchkey SWITCHBOARD_BLOBS_S3_SECRET_KEY=benchsecret
  echo "blob store: S3 (versitygw posix on the same disk)"
else
  echo "blob store: local directory"
fi
SWITCHBOARD_ASSETS_LISTEN=127.0.0.1:18951 "$BIN" serve --listen 127.0.0.1:18950 --data-dir $D/data > $D/log 2>&1 &
SRV=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18950/readyz && break; sleep 0.1; done
gwcpu() { if [ -n "$GW" ]; then awk '{print $14+$15}' /proc/$GW/stat; else echo 0; fi; }
TOK=$("$BIN" token --user alice --data-dir $D/data)
echo "rss idle: $(ps -o rss= -p $SRV) KiB"
( while kill -0 $SRV 2>/dev/null; do ps -o rss= -p $SRV >> $D/rss; sleep 0.1; done ) &
MON=$!
CPU0=$(awk '{print $14+$15}' /proc/$SRV/stat); G0=$(gwcpu)
T0=$(date +%s.%N)
curl -sS -X POST "http://127.0.0.1:18951/v1/assets?name=file.bin" -H "Authorization: Bearer $TOK" \
  -H "Content-Type: application/octet-stream" -T $D/file.bin -o $D/up.json
T1=$(date +%s.%N)
CPU1=$(awk '{print $14+$15}' /proc/$SRV/stat); G1=$(gwcpu)
ID=$(python3 -c "import json;print(json.load(open('$D/up.json'))['asset_id'])")
T2=$(date +%s.%N)
curl -sS -H "Authorization: Bearer $TOK" "http://127.0.0.1:18951/v1/assets/$ID" -o $D/down.bin
T3=$(date +%s.%N)
CPU2=$(awk '{print $14+$15}' /proc/$SRV/stat); G2=$(gwcpu)
cmp -s $D/file.bin $D/down.bin && echo "download identical" || echo "DOWNLOAD DIFFERS"
python3 - <<PY
up=$T1-$T0; down=$T3-$T2; mb=$SIZE_MB*1.048576
tick=100.0
print(f"upload   {$SIZE_MB} MiB in {up:.2f} s: {mb/up:.0f} MB/s, server CPU {($CPU1-$CPU0)/tick:.2f} s ({($CPU1-$CPU0)/tick/(mb/1000):.2f} s per GB)")
print(f"download {$SIZE_MB} MiB in {down:.2f} s: {mb/down:.0f} MB/s, server CPU {($CPU2-$CPU1)/tick:.2f} s ({($CPU2-$CPU1)/tick/(mb/1000):.2f} s per GB)")
if $S3:
    print(f"S3 server CPU: upload {($G1-$G0)/tick/(mb/1000):.2f} s per GB, download {($G2-$G1)/tick/(mb/1000):.2f} s per GB")
PY
kill $SRV; wait $SRV 2>/dev/null || true
if [ -n "$GW" ]; then kill $GW; wait $GW 2>/dev/null || true; fi
kill $MON 2>/dev/null || true
echo "rss max during the transfers: $(sort -n $D/rss | tail -1) KiB"
rm -rf "$D" "$BIN"
