#!/usr/bin/env bash
# Runs the load scenarios of the performance issue (S1–S6) with `parley bench`
# against a release build: the server pinned to one CPU, the generator to
# another, a fresh data directory per scenario, and the open-file limit raised.
# Each scenario leaves <name>.json (the report), <name>.txt (the table) and
# <name>.server.log in the output directory.
#
#   bench/run-scenarios.sh                # every scenario at full scale
#   bench/run-scenarios.sh S1 S4          # some of them
#   QUICK=1 bench/run-scenarios.sh        # reduced scale: proves the script works, not a measurement
#
# Environment: OUT (output directory, default bench/results/<date>), SERVER_CPU (0),
# CLIENT_CPU (1), PORT (18000), QUICK (0), SERVER_BIN (another build of the server
# to measure, e.g. an older commit's; the generator is always this checkout's),
# CARGO_TARGET_DIR (where cargo builds, as for cargo). Run it on a quiet machine;
# it only ever talks to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18000}
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
URL="http://127.0.0.1:$PORT"
BIN=${CARGO_TARGET_DIR:-target}/release/parley
SERVER_BIN=${SERVER_BIN:-$BIN}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(S1 S2 S3 S4 S5 S6)

# 100 000 sockets on each side: raise the limit for both processes (root may
# raise the hard limit; otherwise the soft one goes up to it).
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"

cargo build --release --locked --quiet
mkdir -p "$OUT"
{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "server: $SERVER_BIN"
  echo "date: $(date -u +%FT%TZ)"
  echo "quick: $QUICK"
  echo "cpus: $(nproc)  server on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU"
  echo "open files: $(ulimit -n)"
  uname -a
} > "$OUT/meta.txt"

SERVER_PID=
DATA=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  stop_server
  if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
  DATA=
}
trap cleanup EXIT

fresh_data() { DATA=$(mktemp -d /tmp/parley-bench-XXXXXX); }

# start_server NAME [server flags...]: on $DATA, pinned, waits until it answers.
start_server() {
  local name=$1
  shift
  taskset -c "$SERVER_CPU" "$SERVER_BIN" serve --data-dir "$DATA" --bind "127.0.0.1:$PORT" \
    --log-format json "$@" > "$OUT/$name.server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "$URL/healthz" > /dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server died: see $OUT/$name.server.log"; exit 1; }
    sleep 0.1
  done
  echo "the server did not come up: see $OUT/$name.server.log"
  exit 1
}

# bench NAME [bench arguments...]: the generator, pinned, against the running server.
bench() {
  local name=$1
  shift
  echo "==> $name: parley bench $*"
  taskset -c "$CLIENT_CPU" "$BIN" bench "$@" --url "$URL" --server-pid "$SERVER_PID" \
    --name "$name" --no-progress --json "$OUT/$name.json" | tee "$OUT/$name.txt"
}

q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }

scenario() {
  case $1 in
  S1) # chat: 200 clients, 20 rooms of 10, 20 senders × 5 msg/s. Default server flags.
    fresh_data
    start_server S1
    bench S1 --rooms 20 --members 10 --senders-per-room 1 --rate 5 --duration "$(q 60s 10s)"
    ;;
  S2) # fan-out: 1 000 clients in one room, 1 sender × 10 msg/s. The sender runs at
      # exactly the default per-user limit (10/s), so the server gets headroom.
    fresh_data
    start_server S2 --message-rate 20 --message-burst 40
    bench S2 --rooms 1 --members 1000 --connections-per-user 10 --senders-per-room 1 \
      --rate 10 --duration "$(q 60s 10s)"
    ;;
  S3) # idle: 100 000 authenticated connections over 1 000 rooms, held 60 s.
      # Accounts are made first, then the server restarts, so that what hashing
      # their passwords allocated is not counted as memory of the connections.
    fresh_data
    # Each side holds one descriptor per connection: where the hard open-file
    # limit is below 100 000 (and cannot be raised), as many rooms as fit.
    local s3_rooms
    s3_rooms=$(q 1000 50)
    # The server keeps an eighth of its descriptors for HTTP and some for the
    # database (see `connection_budget`), so fewer WebSockets fit than files.
    local fit=$(( (($(ulimit -n) - 100) * 7 / 8 - 200) / 100 ))
    if [ "$fit" -lt "$s3_rooms" ]; then
      echo "S3: open-file limit $(ulimit -n): $fit rooms of 100 instead of $s3_rooms" | tee -a "$OUT/meta.txt"
      s3_rooms=$fit
    fi
    local s3=(--rooms "$s3_rooms" --members 100 --connections-per-user 100
      --senders-per-room 0 --read-buffer 4096 --connect-concurrency 512
      --connect-timeout 30s --state-file "$DATA/bench-state.json")
    # A hundred connections per account (the generator's way to hold many
    # connections without many accounts): above the default per-user cap.
    local per_user=()
    if "$SERVER_BIN" --help | grep -q -- --max-connections-per-user; then
      per_user=(--max-connections-per-user 100)
    fi
    start_server S3-setup "${per_user[@]}"
    bench S3-setup "${s3[@]}" --duration 0s
    stop_server
    start_server S3 "${per_user[@]}"
    bench S3 "${s3[@]}" --duration "$(q 60s 10s)"
    ;;
  S4) # saturation: 100 clients, 10 rooms of 10, closed loop K=10 (everyone sends):
      # far above the per-user rate limit, which is lifted.
    fresh_data
    start_server S4 --message-rate 1000000 --message-burst 1000000
    bench S4 --rooms 10 --members 10 --senders-per-room 10 --closed-loop 10 \
      --duration "$(q 60s 10s)" --read-buffer 65536 --drain 10s
    ;;
  S5) # history: a room of 1 000 000 messages in a 10 000 000-message database;
      # pages of 50, the latest and 500 000 back. Seeded with the server stopped.
    fresh_data
    echo "==> S5: seeding"
    taskset -c "$SERVER_CPU" "$SERVER_BIN" bench seed-history --data-dir "$DATA" --no-progress \
      --room-messages "$(q 1000000 100000)" --total-messages "$(q 10000000 200000)" \
      | tee "$OUT/S5.seed.txt"
    start_server S5
    bench S5 history --room bench-history --limit 50 \
      --before "$(q 500000 50000)" --duration "$(q 60s 10s)"
    ;;
  S6) # reconnect storm: 10 000 clients drop at once and resume while 10 rooms keep
      # talking (senders stay connected); all back within 10 s, 0 lost, 0 duplicated.
    fresh_data
    start_server S6
    bench S6 --rooms 10 --members "$(q 1000 200)" --connections-per-user 10 \
      --senders-per-room 1 --rate 5 --duration "$(q 60s 15s)" --reconnect-at "$(q 20s 5s)" \
      --keep-senders --reconnect-timeout 30s --connect-timeout 30s
    ;;
  *)
    echo "unknown scenario $1 (S1 … S6)"
    exit 1
    ;;
  esac
  cleanup
}

for name in "${SCENARIOS[@]}"; do
  scenario "$name"
done
echo "results in $OUT"
