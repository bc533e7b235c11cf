#!/usr/bin/env bash
# Routing benchmark, end to end with every hop durable:
#   corridor send --stats  ->  corridor run "up" (MLLP in, one transformer, MLLP out)
#                          ->  corridor run "down" (an MLLP listener storing every message)
# Both engines keep their journals in SQLite (WAL, full sync). The end-to-end latency of
# each message is the downstream journal's received_at minus the upstream journal's
# received_at (the same machine's clock), joined on MSH-10: from the moment Corridor
# received it to the moment the destination had it.
#
#   scripts/bench/route.sh                        # 100,000 closed loop, 100,000 at 10,000/s, 30,000 at 1,000/s
#   COUNT=20000 RATE_COUNT=10000 scripts/bench/route.sh
#   SKIP_BUILD=1 CARGO_TARGET_DIR=... scripts/bench/route.sh
#
# Prints Markdown table rows; the upstream engine's peak resident memory (VmHWM) too.
set -euo pipefail

source "$(dirname "$0")/common.sh"
COUNT="${COUNT:-100000}"
RATE="${RATE:-1000}"
RATE_COUNT="${RATE_COUNT:-30000}"
HIGH_RATE="${HIGH_RATE:-10000}"
HIGH_COUNT="${HIGH_COUNT:-100000}"
CONNECTIONS="${CONNECTIONS:-8}"
PORT_UP=23575
PORT_DOWN=23576

cat > "$WORK/down.toml" <<EOF
[http]
enabled = false
[channels.ehr]
source = { type = "mllp", listen = "127.0.0.1:$PORT_DOWN" }
EOF
cat > "$WORK/up.toml" <<EOF
[http]
enabled = false
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:$PORT_UP" }
transforms = [ { set = "MSH-5", value = "CHART" } ]
[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "127.0.0.1:$PORT_DOWN"
EOF

start_engine down "$WORK/down.toml"
DOWN_PID=$ENGINE_PID
start_engine up "$WORK/up.toml"
UP_PID=$ENGINE_PID

echo "| run | command | sent msgs/s (ACKed) | delivered msgs/s, end to end | e2e p50 ms | p90 | p99 | max |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"

run() { # label rows, corridor send args...
    local label="$1" rows="$2"; shift 2
    local before out rate
    before=$(count_rows "$WORK/down")
    out=$("$CORRIDOR" send --stats "$@" "$ORU")
    echo "$out" | sed "s|^|# $label: |" >&2
    rate=$(echo "$out" | awk '/^throughput/ {print $2}')
    wait_rows "$WORK/down" $((before + rows))
    read -r n span delivered p50 p90 p99 max < <(e2e_latency "$WORK/up" "$WORK/down" "$before")
    echo "| $label | \`corridor send --stats $*\` | $rate | $delivered ($n in $span s) | $p50 | $p90 | $p99 | $max |"
}

run "closed loop, $CONNECTIONS connections" "$COUNT" --to "127.0.0.1:$PORT_UP" --connections "$CONNECTIONS" --count "$COUNT"
run "open loop at $HIGH_RATE/s" "$HIGH_COUNT" --to "127.0.0.1:$PORT_UP" --connections 8 --count "$HIGH_COUNT" --rate "$HIGH_RATE"
run "open loop at $RATE/s" "$RATE_COUNT" --to "127.0.0.1:$PORT_UP" --connections 4 --count "$RATE_COUNT" --rate "$RATE"

hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$UP_PID/status")
echo
echo "upstream corridor run peak resident memory (VmHWM): $((hwm / 1024)) MiB; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$UP_PID" "$DOWN_PID"
wait "$UP_PID" "$DOWN_PID" || true
