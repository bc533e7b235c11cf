#!/usr/bin/env bash
# Alert latency, end to end: from the ACK of a triggering result to the alert's receipt
# by a downstream MLLP listener, with other traffic alongside.
#
#   corridor send --rate 1000 (other traffic: ORU^R01 without critical values)  --+
#   a Python sender: one critical potassium per patient, every 100 ms ------------+-> corridor run "up"
#        (records when each ACK arrived)                                             lab channel: mpi, fhir
#                                                                                    repository, rules;
#   corridor run "down" (an MLLP listener storing every message)  <---------------  [rules] destinations
#
# The latency of an alert is the downstream journal's received_at minus the moment the
# sender read the triggering message's ACK (same machine, same clock); the alert's
# evidence OBX names the triggering MSH-10. Target: p99 <= 50 ms.
#
#   scripts/bench/rules_latency.sh                   # 300 triggers, 1,000 msgs/s other traffic
#   TRIGGERS=1000 RATE=1000 scripts/bench/rules_latency.sh
#   SKIP_BUILD=1 CARGO_TARGET_DIR=... scripts/bench/rules_latency.sh
#   TRIGGERS=20 RATE=100 SKIP_BUILD=1 CORRIDOR=target/debug/corridor scripts/bench/rules_latency.sh
#                                                    # a quick check that it works (numbers meaningless)
#
# Prints one Markdown table row: triggers, alerts received, p50, p90, p99, max (ms).
set -euo pipefail

source "$(dirname "$0")/common.sh"
TRIGGERS="${TRIGGERS:-300}"
RATE="${RATE:-1000}"
PORT_UP=23585
PORT_DOWN=23586

cat > "$WORK/down.toml" <<EOF
[http]
enabled = false
[channels.pager]
source = { type = "mllp", listen = "127.0.0.1:$PORT_DOWN" }
EOF
cat > "$WORK/up.toml" <<EOF
[http]
enabled = false
[mpi]
enabled = true
[rules]
destinations = [ { name = "pager", type = "mllp", to = "127.0.0.1:$PORT_DOWN" } ]
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:$PORT_UP" }
ordering_key = "PID-3.1"
fhir = { repository = true }
EOF
start_engine down "$WORK/down.toml"
start_engine up "$WORK/up.toml"

# Other traffic for as long as the triggers take (100 ms apart), and a little more.
OTHER=$(( (TRIGGERS / 10 + 5) * RATE ))
"$CORRIDOR" send --to "127.0.0.1:$PORT_UP" --count "$OTHER" --rate "$RATE" --connections 4 --stats "$ORU" \
    > "$WORK/other.txt" 2>&1 &
SEND_PID=$!
PIDS+=("$SEND_PID")
sleep 1

python3 - "$PORT_UP" "$TRIGGERS" "$WORK/acks.txt" <<'EOF'
import socket, sys, time
port, count, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
acks = open(out, "w")
for n in range(count):
    control = f"TRIG{n:06d}"
    now = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    msg = (f"MSH|^~\\&|LAB|HOSP|EHR|HOSP|{now}||ORU^R01^ORU_R01|{control}|P|2.5.1\r"
           f"PID|1||BENCH{n:06d}^^^HOSP^MR||BENCH^PATIENT{n}\r"
           f"OBR|1||F{n}|2823-3^Potassium^LN|||{now}\r"
           f"OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F|||{now}\r")
    s.sendall(b"\x0b" + msg.encode() + b"\x1c\r")
    buf = b""
    while not buf.endswith(b"\x1c\r"):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("the engine closed the connection")
        buf += chunk
    acks.write(f"{control} {int(time.time() * 1e6)}\n")
    time.sleep(0.1)
acks.close()
EOF

# Wait (up to 60 s) for every trigger's alert downstream (the alert's evidence OBX names
# the triggering MSH-10; an alert of the other traffic, if any, is not counted).
python3 - "$WORK/down/corridor.db" "$WORK/acks.txt" "$TRIGGERS" <<'EOF'
import re, sqlite3, sys, time
db_path, acks_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
acked = dict(line.split() for line in open(acks_path))
deadline = time.time() + 60
while True:
    db = sqlite3.connect(db_path)
    rows = db.execute("select j.received_at, r.raw from journal j join journal_raw r on r.id = j.id").fetchall()
    db.close()
    lat = []
    for received_at, raw in rows:
        m = re.search(rb"\((TRIG\d+) OBX", raw)
        if m and m.group(1).decode() in acked:
            lat.append((received_at - int(acked[m.group(1).decode()])) / 1000)
    if len(lat) >= count or time.time() > deadline:
        break
    time.sleep(0.2)
if len(lat) < count:
    print(f"# only {len(lat)} of {count} alerts arrived downstream within 60 s", file=sys.stderr)
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print(f"| {count} | {len(lat)} | {pct(0.5):.1f} | {pct(0.9):.1f} | {pct(0.99):.1f} | {lat[-1] if lat else float('nan'):.1f} |")
EOF

# The other traffic's own statistics (its rate must have held for the run to count).
wait "$SEND_PID" || true
sed 's/^/# other traffic: /' "$WORK/other.txt" >&2
