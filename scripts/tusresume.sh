#!/usr/bin/env bash
# A resumable (tus) upload through the binary, cut when about half is sent
# and resumed from the offset the server reports; then a ranged and a full
# download, compared with the original. Prints throughput and the server's
# RSS. Usage, from the repository root: scripts/tusresume.sh [size in MiB, default 1024]
set -eu
SIZE_MB=${1:-1024}
D=${TMPDIR:-/tmp}/switchboard-tusresume
BIN=$D.bin
go build -o "$BIN" ./cmd/switchboard
rm -rf "$D"; mkdir -p "$D"
head -c $((SIZE_MB*1024*1024)) /dev/urandom > "$D/file.bin"
sync # on disk before the clock starts: its writeback must not compete with the transfer
SIZE=$((SIZE_MB*1024*1024))
A=127.0.0.1:18961
SWITCHBOARD_ASSETS_LISTEN=$A "$BIN" serve --listen 127.0.0.1:18960 --data-dir "$D/data" > "$D/log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://$A/v1/assets/x" && break; sleep 0.1; done
TOK=$("$BIN" token --user alice --data-dir "$D/data")
( while kill -0 $SRV 2>/dev/null; do ps -o rss= -p $SRV >> "$D/rss"; sleep 0.1; done ) &
MON=$!
H=(-H "Authorization: Bearer $TOK" -H "Tus-Resumable: 1.0.0")
LOC=$(curl -sS -i -X POST "http://$A/v1/assets/uploads" "${H[@]}" -H "Upload-Length: $SIZE" \
  -H "Upload-Metadata: filename $(printf file.bin | base64)" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
case $LOC in http*) ;; *) LOC="http://$A$LOC" ;; esac
echo "upload: $LOC"
T0=$(date +%s.%N)
# The first PATCH, rate-limited to 100 MB/s, is killed after the time half
# the file takes. (Polling the offset meanwhile would end it early: a HEAD
# takes the upload's lock from a running PATCH.)
curl -sS -X PATCH "$LOC" "${H[@]}" -H "Upload-Offset: 0" -H "Content-Type: application/offset+octet-stream" \
  -T "$D/file.bin" -o /dev/null --limit-rate 100M &
C=$!
sleep "$(python3 -c "print($SIZE/2/(100*1024*1024))")"
kill $C 2>/dev/null || true; wait $C 2>/dev/null || true
OFF=$(curl -sS -I "$LOC" "${H[@]}" | tr -d '\r' | awk 'tolower($1)=="upload-offset:"{print $2}')
echo "cut: the server has $OFF of $SIZE bytes"
tail -c +$((OFF+1)) "$D/file.bin" > "$D/rest.bin"
RESP=$(curl -sS -i -X PATCH "$LOC" "${H[@]}" -H "Upload-Offset: $OFF" -H "Content-Type: application/offset+octet-stream" -T "$D/rest.bin" | tr -d '\r')
T1=$(date +%s.%N)
ID=$(echo "$RESP" | awk 'tolower($1)=="asset-id:"{print $2}')
echo "resumed and finished: asset $ID"
curl -sS -H "Authorization: Bearer $TOK" -H "Range: bytes=1000-1999" "http://$A/v1/assets/$ID" -o "$D/range.bin"
cmp -s "$D/range.bin" <(tail -c +1001 "$D/file.bin" | head -c 1000) && echo "range 1000-1999 identical" || echo "RANGE DIFFERS"
T2=$(date +%s.%N)
curl -sS -H "Authorization: Bearer $TOK" "http://$A/v1/assets/$ID" -o "$D/down.bin"
T3=$(date +%s.%N)
cmp -s "$D/file.bin" "$D/down.bin" && echo "download identical: sha256 $(sha256sum "$D/down.bin" | cut -c1-16)…" || echo "DOWNLOAD DIFFERS"
kill $MON 2>/dev/null || true
python3 -c "
mb=$SIZE/1e6
print(f'upload with one cut and a resume: {mb/($T1-$T0):.0f} MB/s ({$T1-$T0:.1f} s for {mb:.0f} MB)')
print(f'download: {mb/($T3-$T2):.0f} MB/s')"
echo "server RSS at most: $(sort -n "$D/rss" | tail -1) KiB"
rm -rf "$D" "$BIN"
