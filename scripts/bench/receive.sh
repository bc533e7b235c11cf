#!/usr/bin/env bash
# Receive benchmark: durable ingest of `corridor run` measured with
# `corridor send --stats`, and peers with no storage at all measured with the
# same command in the same run (python-hl7's asyncio MLLP server, node's
# simple-hl7). Prints a Markdown table row per measurement.
#
#   scripts/bench/receive.sh            # full run (200,000 messages into corridor)
#   COUNT=50000 scripts/bench/receive.sh
#   SKIP_BUILD=1 CARGO_TARGET_DIR=... scripts/bench/receive.sh   # use an existing build
#
# Needs: a release build (built here), python3 (a venv is made under
# target/py-venv-hl7), node and npm (simple-hl7 is installed under
# target/node-peers). Sends only to 127.0.0.1.
set -euo pipefail

source "$(dirname "$0")/common.sh"
COUNT="${COUNT:-200000}"
PEER_COUNT="${PEER_COUNT:-20000}"
PORT_CORRIDOR=22575
PORT_PYTHON=22576
PORT_NODE=22577

wait_for_port() { # port
    for _ in $(seq 1 400); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Highest VmRSS (KiB) of a process, sampled every 100 ms until it is told to stop.
sample_rss() { # pid outfile
    local max=0 rss
    while [ ! -f "$2.stop" ]; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$max" ] && max=$rss
        sleep 0.1
    done
    echo "$max" > "$2"
}

stats() { # label, corridor send args...
    local label="$1"; shift
    local out
    out=$("$CORRIDOR" send --stats "$@" "$ORU")
    echo "$out" | sed "s/^/# $label: /" >&2
    local rate p50 p90 p99 max
    rate=$(echo "$out" | awk '/^throughput/ {print $2}')
    read -r p50 p90 p99 max < <(echo "$out" | awk '/^ACK latency/ {print $4, $7, $10, $13}')
    echo "| $label | \`corridor send --stats $*\` | $rate | $p50 | $p90 | $p99 | $max |"
}

echo "| receiver | command | msgs/s | p50 ms | p90 ms | p99 ms | max ms |"
echo "| --- | --- | --- | --- | --- | --- | --- |"

# --- corridor run: durable (SQLite WAL, full sync, group commit) ---
cat > "$WORK/corridor.toml" <<EOF
[http]
enabled = false
[channels.bench]
source = { type = "mllp", listen = "127.0.0.1:$PORT_CORRIDOR" }
EOF
start_ns=$(date +%s%N)
"$CORRIDOR" run --data "$WORK/data" --config "$WORK/corridor.toml" 2> "$WORK/run.log" &
RUN_PID=$!
PIDS+=("$RUN_PID")
until grep -q "corridor is listening" "$WORK/run.log"; do sleep 0.002; done
listening_ns=$(date +%s%N)
wait_for_port "$PORT_CORRIDOR"
startup_ms=$(( (listening_ns - start_ns) / 1000000 ))
internal_ms=$(grep -o 'startup_ms=[0-9]*' "$WORK/run.log" | cut -d= -f2)

sample_rss "$RUN_PID" "$WORK/rss" &
SAMPLER=$!
stats "corridor run (durable)" --to "127.0.0.1:$PORT_CORRIDOR" --connections 8 --count "$COUNT"
touch "$WORK/rss.stop"; wait "$SAMPLER"
rss_kib=$(cat "$WORK/rss")
stats "corridor run (durable), ping-pong" --to "127.0.0.1:$PORT_CORRIDOR" --connections 1 --count 20000
stats "corridor run (durable), open loop" --to "127.0.0.1:$PORT_CORRIDOR" --connections 8 --count 250000 --rate 25000
rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from journal').fetchone()[0])" "$WORK/data/corridor.db")
kill -TERM "$RUN_PID"; wait "$RUN_PID" || true

# --- python-hl7 asyncio MLLP server, ACK only ---
VENV="$ROOT/target/py-venv-hl7"
"$ROOT/scripts/test-peers" hl7
cat > "$WORK/python_server.py" <<'EOF'
import asyncio, sys
from hl7.mllp import start_hl7_server

async def serve(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        if not writer.is_closing():
            writer.close()

async def main():
    server = await start_hl7_server(serve, host="127.0.0.1", port=int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
EOF
"$VENV/bin/python" "$WORK/python_server.py" "$PORT_PYTHON" &
PIDS+=("$!")
wait_for_port "$PORT_PYTHON"
stats "python-hl7 0.4.5 asyncio server (no storage)" --to "127.0.0.1:$PORT_PYTHON" --connections 8 --count "$PEER_COUNT"

# --- node simple-hl7 server, ACK only ---
NODE_DIR="$ROOT/target/node-peers"
mkdir -p "$NODE_DIR"
if [ ! -d "$NODE_DIR/node_modules/simple-hl7" ]; then
    (cd "$NODE_DIR" && { [ -f package.json ] || echo '{"name":"corridor-bench-peers","private":true}' > package.json; } \
        && npm install --silent --no-audit --no-fund simple-hl7@3.3.0)
fi
cat > "$NODE_DIR/simple_hl7_server.js" <<'EOF'
const hl7 = require('simple-hl7');
const app = hl7.tcp();
app.use((req, res, next) => res.end());
app.use((err, req, res, next) => { res.ack.getSegment('MSA').setField(1, 'AR'); res.end(); });
app.start(parseInt(process.argv[2], 10));
EOF
node "$NODE_DIR/simple_hl7_server.js" "$PORT_NODE" > /dev/null &
PIDS+=("$!")
wait_for_port "$PORT_NODE"
stats "simple-hl7 3.3.0 node server (no storage)" --to "127.0.0.1:$PORT_NODE" --connections 8 --count "$PEER_COUNT"

echo
echo "corridor run: listening ${startup_ms} ms after spawn (its own startup_ms=${internal_ms}, fresh data dir)"
echo "corridor run: peak resident memory ${rss_kib} KiB during the 8-connection run"
echo "corridor run: ${rows} journal rows after the runs"
