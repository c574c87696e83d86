#!/usr/bin/env bash
# The upload path under load (issue 17): N concurrent uploads of SIZE_MIB each
# to a release server on loopback. Prints the throughput (MiB/s) and how much
# the server's resident memory grew (VmHWM, the peak, against the RSS before):
# uploads stream to disk, so the growth stays far below N × SIZE.
#
#   bench/uploads.sh                  # 20 × 25 MiB
#   N=50 SIZE_MIB=10 bench/uploads.sh
#
# Environment: SERVER_BIN (default target/release/parley, built if missing),
# PORT (18300), N (20), SIZE_MIB (25). Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20}
SIZE_MIB=${SIZE_MIB:-25}
PORT=${PORT:-18300}
BIN=${SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/parley}
[ -x "$BIN" ] || cargo build --release --locked --quiet
URL="http://127.0.0.1:$PORT"

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
"$BIN" serve --bind "127.0.0.1:$PORT" --data-dir "$work/data" \
  --max-upload-bytes $((SIZE_MIB * 1024 * 1024 + 1)) --uploads-per-minute 100000 \
  --max-upload-bytes-per-day $((N * SIZE_MIB * 1024 * 1024 * 2)) >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done

jar="$work/cookies"
curl -sf -c "$jar" -b "$jar" -H 'content-type: application/json' \
  -d '{"username":"bench_uploader","password":"bench-password-9"}' "$URL/tools/api/auth/register/" >/dev/null
csrf=$(awk '$6 == "csrftoken" {print $7}' "$jar")
token=$(curl -sf -c "$jar" -b "$jar" -H "x-csrftoken: $csrf" -H 'content-type: application/json' \
  -d '{"name":"bench"}' "$URL/tools/api/auth/tokens/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
auth="authorization: Bearer $token"
room=$(curl -sf -H "$auth" -H 'content-type: application/json' -d '{"name":"Uploads","room_type":"group"}' \
  "$URL/tools/api/chat/rooms/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["room_id"])')

head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$work/file.bin"
rss_kib() { awk -v f="$1" '$1 == f":" {print $2}' "/proc/$server/status"; }
before=$(rss_kib VmRSS)
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$N"); do
  curl -s -o "$work/out.$i" -w '%{http_code}\n' -H "$auth" -F "file=@$work/file.bin;filename=f$i.bin" \
    "$URL/tools/api/chat/$room/uploads/" >"$work/code.$i" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
end=$(date +%s.%N)
peak=$(rss_kib VmHWM)
ok=$(cat "$work"/code.* | grep -c '^201$' || true)
python3 - "$N" "$SIZE_MIB" "$start" "$end" "$before" "$peak" "$ok" <<'PY'
import sys
n, size, start, end, before, peak, ok = sys.argv[1:]
n, size, ok = int(n), int(size), int(ok)
seconds = float(end) - float(start)
print(f"uploads: {ok}/{n} answered 201")
print(f"{n} x {size} MiB in {seconds:.2f} s: {n * size / seconds:.1f} MiB/s")
print(f"server RSS: {int(before) / 1024:.1f} MiB before, peak {int(peak) / 1024:.1f} MiB: +{(int(peak) - int(before)) / 1024:.1f} MiB")
PY
