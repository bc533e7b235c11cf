# Shared by the benchmark scripts (sourced, not run): the paths, a work folder and the
# processes to stop at exit, the release build unless SKIP_BUILD is set, and helpers to
# start a `corridor run` and to wait for journal rows.
#
# KEEP_WORK=1 keeps the work folder (the engines' data folders and logs) for a look after.
# CORRIDOR=path/to/corridor runs another binary (a debug build, for a quick check that a
# script works end to end; its numbers mean nothing).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
ORU="$ROOT/crates/hl7v2/tests/data/oru_r01_1500.hl7"
CORRIDOR="${CORRIDOR:-$TARGET/release/corridor}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "# building release binary" >&2
    (cd "$ROOT" && cargo build --release -p corridor --quiet)
fi

# Starts `corridor run` with data folder $WORK/NAME and configuration CONFIG, its log in
# $WORK/NAME.log, and waits until it listens. Sets ENGINE_PID (stopped at exit).
start_engine() { # name config
    "$CORRIDOR" run --data "$WORK/$1" --config "$2" > /dev/null 2> "$WORK/$1.log" &
    ENGINE_PID=$!
    PIDS+=("$ENGINE_PID")
    until grep -q "corridor is listening" "$WORK/$1.log"; do
        kill -0 "$ENGINE_PID" 2>/dev/null || { cat "$WORK/$1.log" >&2; exit 1; }
        sleep 0.01
    done
}

# The number of rows in the journal of the engine whose data folder is DIR.
count_rows() { # data dir
    python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from journal').fetchone()[0])" "$1/corridor.db"
}

# Waits until that journal holds ROWS rows, at most SECONDS (default: no limit); fails
# when the limit passes first.
wait_rows() { # data dir, rows, [seconds]
    local deadline=""
    [ -n "${3:-}" ] && deadline=$(( $(date +%s) + $3 ))
    while [ "$(count_rows "$1")" -lt "$2" ]; do
        if [ -n "$deadline" ] && [ "$(date +%s)" -ge "$deadline" ]; then
            echo "# $1: fewer than $2 journal rows after $3 s" >&2
            return 1
        fi
        sleep 0.05
    done
}

# End-to-end latency between two engines on this machine, joined on MSH-10 (`corridor
# send --count` gives each message a unique one): for the downstream journal's rows
# after the first AFTER, prints rows, the span (s) from the first upstream receipt to
# the last downstream receipt, delivered msgs/s, and the p50, p90, p99 and max (ms) of
# down.received_at - up.received_at.
e2e_latency() { # upstream data dir, downstream data dir, after
    python3 - "$1/corridor.db" "$2/corridor.db" "$3" <<'EOF'
import sqlite3, sys
up, down, after = sys.argv[1:4]
db = sqlite3.connect(down)
db.execute("attach database ? as up", (up,))
rows = db.execute(
    "select d.received_at - u.received_at, u.received_at, d.received_at "
    "from journal d join up.journal u on u.control_id = d.control_id "
    "where d.id > ?", (int(after),)).fetchall()
lat = sorted(r[0] for r in rows)
def pct(p):
    return lat[min(len(lat) - 1, int(p * len(lat)))] / 1000
span = (max(r[2] for r in rows) - min(r[1] for r in rows)) / 1e6
print(len(rows), f"{span:.2f}", f"{len(rows) / span:.0f}", f"{pct(0.5):.2f}", f"{pct(0.9):.2f}", f"{pct(0.99):.2f}", f"{lat[-1] / 1000:.2f}")
EOF
}
