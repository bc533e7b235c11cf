#!/usr/bin/env bash
# Message search over a large journal: fills a store with COUNT (default 1,000,000)
# messages once, through a real `corridor run` (MLLP in, its pipeline writes the search
# index), kept under target/bench-search/ so later runs reuse it; then times
# `GET /api/messages` (the console's search) REPS times for each kind of search and
# prints p50, p99 and max in ms, as the client saw them (curl's time_total).
#
# The messages are 10,000 variants of an ORU^R01 (their own patient id, family name,
# placer and filler order numbers), sent round robin, so every patient and order value
# matches COUNT / 10,000 messages; MSH-10 is unique per message.
#
#   scripts/bench/search.sh                                   # 1,000,000 messages, 50 reps
#   COUNT=20000 REPS=10 SKIP_BUILD=1 CORRIDOR=target/debug/corridor scripts/bench/search.sh
#   FRESH=1 scripts/bench/search.sh                           # fill again
#
# Needs curl and python3. HTTP runs with `auth = "off"` on the loopback address: the
# time measured is the search's, not the token check's (that is in BENCHMARKS.md).
set -euo pipefail

source "$(dirname "$0")/common.sh"
COUNT="${COUNT:-1000000}"
REPS="${REPS:-50}"
STORE="${STORE:-$TARGET/bench-search/$COUNT}"
PORT_MLLP=23595
PORT_HTTP=23596
HTTP="http://127.0.0.1:$PORT_HTTP"

cat > "$WORK/search.toml" <<EOF
[http]
listen = "127.0.0.1:$PORT_HTTP"
auth = "off"
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:$PORT_MLLP" }
EOF

# 10,000 variants of the benchmark's ORU^R01, each with its own PID-3, PID-5 family
# name, ORC-2/OBR-2 (placer) and ORC-3/OBR-3 (filler).
python3 - "$ORU" "$WORK/variants.hl7" <<'EOF'
import sys
oru = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
out = open(sys.argv[2], "wb")
for n in range(10_000):
    segments = []
    for segment in oru.split(b"\r"):
        fields = segment.split(b"|")
        name = fields[0]
        if name == b"PID" and len(fields) > 5:
            fields[3] = b"MRN%05d^^^HOSP^MR" % n
            fields[5] = b"FAMILY%05d^GIVEN" % n
        elif name in (b"ORC", b"OBR") and len(fields) > 3:
            fields[2] = b"PLACER%05d" % n
            fields[3] = b"FILLER%05d" % n
        segments.append(b"|".join(fields))
    out.write(b"\r".join(s for s in segments if s) + b"\r")
EOF

if [ -n "${FRESH:-}" ]; then rm -rf "$STORE"; fi
mkdir -p "$STORE"
"$CORRIDOR" run --data "$STORE" --config "$WORK/search.toml" > /dev/null 2> "$WORK/search.log" &
ENGINE_PID=$!
PIDS+=("$ENGINE_PID")
until grep -q "corridor is listening" "$WORK/search.log"; do
    kill -0 "$ENGINE_PID" 2>/dev/null || { cat "$WORK/search.log" >&2; exit 1; }
    sleep 0.01
done
have=$(count_rows "$STORE")
if [ "$have" -lt "$COUNT" ]; then
    echo "# filling $STORE: $have of $COUNT messages" >&2
    "$CORRIDOR" send --stats --to "127.0.0.1:$PORT_MLLP" --connections 8 \
        --count $((COUNT - have)) "$WORK/variants.hl7" | sed 's|^|# fill: |' >&2
    wait_rows "$STORE" "$COUNT"
fi
# The pipeline indexes as it processes: wait until nothing is left `received`.
until [ "$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from journal where state = 'received'\").fetchone()[0])" "$STORE/corridor.db")" = 0 ]; do
    sleep 1
done

# A page from the middle of the journal, for keyset paging deep down.
middle=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select id from journal order by id limit 1 offset ?', (int(sys.argv[2]) // 2,)).fetchone()[0])" "$STORE/corridor.db" "$COUNT")
since=$(python3 -c "import sqlite3,sys,datetime; t=sqlite3.connect(sys.argv[1]).execute('select received_at from journal where id = ?', (int(sys.argv[2]),)).fetchone()[0]; print(datetime.datetime.fromtimestamp(t/1e6, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))" "$STORE/corridor.db" "$middle")

control=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select control_id from journal where id = ?', (int(sys.argv[2]),)).fetchone()[0])" "$STORE/corridor.db" "$middle")

echo "| search (\`GET /api/messages?...\`, $COUNT messages) | rows | p50 ms | p99 ms | max ms |"
echo "| --- | --- | --- | --- | --- |"
measure() { # label, query
    local times rows
    rows=$(curl -sf "$HTTP/api/messages?$2" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['messages']))")
    times=$(for _ in $(seq "$REPS"); do
        curl -sf -o /dev/null -w '%{time_total}\n' "$HTTP/api/messages?$2"
    done | sort -n)
    python3 - "$1" "$rows" <<EOF
import sys
t = sorted(float(x) * 1000 for x in """$times""".split())
pct = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print(f"| {sys.argv[1]} | {sys.argv[2]} | {pct(0.5):.1f} | {pct(0.99):.1f} | {t[-1]:.1f} |")
EOF
}
measure "newest page (50)" "limit=50"
measure "channel and state" "channel=lab&state=processed&limit=50"
measure "page deep down (before=middle)" "before=$middle&limit=50"
measure "time range from the middle" "since=$since&limit=50"
measure "control id (MSH-10)" "control_id=$(python3 -c "import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))" "$control")"
measure "message type and trigger" "type=ORU%5ER01&limit=50"
measure "sender (MSH-3)" "sender=EHR%20Application&limit=50"
measure "patient id (PID-3.1)" "patient_id=MRN04242&limit=50"
measure "patient name (family, beginning)" "patient_name=FAMILY0424&limit=50"
measure "order (placer/filler)" "order=FILLER04242&limit=50"
measure "text inside the message" "text=FAMILY04242&limit=50"
measure "text, no match (reads everything it may)" "text=NO-SUCH-TEXT-ANYWHERE&limit=50"

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$ENGINE_PID"
wait "$ENGINE_PID" || true
