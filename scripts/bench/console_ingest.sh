#!/usr/bin/env bash
# What the console's dashboard and its live updates cost ingest, end to end:
#   corridor send --stats --rate 10000  ->  corridor run "up" (MLLP in, one transformer,
#   MLLP out, HTTP on)  ->  corridor run "down" (an MLLP listener storing every message)
# run twice on the same engines: once with nobody watching, once with the dashboard
# open: CLIENTS live streams (`GET /console/events`, server-sent events, one update
# every 2 s each) and CLIENTS page loads of the dashboard (`GET /`) every 2 s. The two
# rows should not differ beyond the noise of repeated runs (run it more than once: the
# order of the rows is swapped with ORDER=watched-first).
#
#   scripts/bench/console_ingest.sh                      # 100,000 at 10,000/s, 4 watchers
#   COUNT=30000 CLIENTS=8 scripts/bench/console_ingest.sh
#   SKIP_BUILD=1 CORRIDOR=target/debug/corridor COUNT=2000 RATE=500 scripts/bench/console_ingest.sh
#
# Needs curl. HTTP runs with `auth = "off"` on the loopback address (allowed there
# only): the cost measured is the dashboard's, not the token check's.
set -euo pipefail

source "$(dirname "$0")/common.sh"
COUNT="${COUNT:-100000}"
RATE="${RATE:-10000}"
CLIENTS="${CLIENTS:-4}"
CONNECTIONS="${CONNECTIONS:-8}"
ORDER="${ORDER:-quiet-first}"
PORT_UP=23585
PORT_DOWN=23586
PORT_HTTP=23587

cat > "$WORK/down.toml" <<EOF
[http]
enabled = false
[channels.ehr]
source = { type = "mllp", listen = "127.0.0.1:$PORT_DOWN" }
EOF
cat > "$WORK/up.toml" <<EOF
[http]
listen = "127.0.0.1:$PORT_HTTP"
auth = "off"
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

# Starts the watchers; their process ids in WATCHERS.
WATCHERS=()
watch_dashboard() {
    local i
    for i in $(seq "$CLIENTS"); do
        curl -sN -H "Accept: text/event-stream" "http://127.0.0.1:$PORT_HTTP/console/events" \
            > "$WORK/events.$i" &
        WATCHERS+=($!)
        PIDS+=($!)
        (while true; do
            curl -s -o /dev/null -H "Accept: text/html" "http://127.0.0.1:$PORT_HTTP/"
            sleep 2
        done) &
        WATCHERS+=($!)
        PIDS+=($!)
    done
}
stop_watching() {
    kill "${WATCHERS[@]}" 2>/dev/null || true
    wait "${WATCHERS[@]}" 2>/dev/null || true
    WATCHERS=()
}

echo "| run | sent msgs/s (ACKed) | delivered msgs/s, end to end | e2e p50 ms | p90 | p99 | max | dashboard updates received |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"

run() { # label, watched (0 or 1)
    local label="$1" before out rate updates="-"
    [ "$2" = 1 ] && watch_dashboard
    before=$(count_rows "$WORK/down")
    out=$("$CORRIDOR" send --stats --to "127.0.0.1:$PORT_UP" --connections "$CONNECTIONS" \
        --count "$COUNT" --rate "$RATE" "$ORU")
    echo "$out" | sed "s|^|# $label: |" >&2
    rate=$(echo "$out" | awk '/^throughput/ {print $2}')
    wait_rows "$WORK/down" $((before + COUNT))
    if [ "$2" = 1 ]; then
        updates=$(cat "$WORK"/events.* | grep -c '^event: counts' || true)
        stop_watching
    fi
    read -r n span delivered p50 p90 p99 max < <(e2e_latency "$WORK/up" "$WORK/down" "$before")
    echo "| $label | $rate | $delivered ($n in $span s) | $p50 | $p90 | $p99 | $max | $updates |"
}

if [ "$ORDER" = watched-first ]; then
    run "dashboard open ($CLIENTS streams + $CLIENTS page loads every 2 s)" 1
    run "nobody watching" 0
else
    run "nobody watching" 0
    run "dashboard open ($CLIENTS streams + $CLIENTS page loads every 2 s)" 1
fi

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$UP_PID" "$DOWN_PID"
wait "$UP_PID" "$DOWN_PID" || true
