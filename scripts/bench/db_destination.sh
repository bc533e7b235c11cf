#!/usr/bin/env bash
# Database destination benchmark: rows per second into PostgreSQL for a 10-OBX result,
# for each `batch_size` in BATCHES (default "1 100"): 1 is one transaction per message
# (its 10 rows and its corridor_delivered marker), 100 writes up to 100 messages' rows
# and markers in one transaction.
#   corridor send --count N  ->  corridor run (MLLP in, a database destination, for_each = "OBX")
#                            ->  PostgreSQL (default 127.0.0.1:5432, user postgres)
# The rate is rows written over the span from the first message's receipt in the journal
# to the last marker's delivered_at in PostgreSQL (the bench makes corridor_delivered
# itself, with clock_timestamp() as delivered_at's default, so a marker carries the time
# it was written rather than its transaction's start). Each mode gets a fresh database
# and engine.
#
#   scripts/bench/db_destination.sh                  # 10,000 messages, 100,000 rows, each mode
#   BATCHES=100 scripts/bench/db_destination.sh      # batched only
#   COUNT=200 CORRIDOR=target/debug/corridor SKIP_BUILD=1 scripts/bench/db_destination.sh
set -euo pipefail

source "$(dirname "$0")/common.sh"
COUNT="${COUNT:-10000}"
CONNECTIONS="${CONNECTIONS:-4}"
BATCHES="${BATCHES:-1 100}"
PORT=23590
PGADMIN="${PGADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
DBS=()
"$ROOT/scripts/database-services"
trap 'for db in "${DBS[@]}"; do psql -q "$PGADMIN" -c "drop database if exists $db" >/dev/null 2>&1 || true; done; cleanup' EXIT

# A result with ten OBX.
python3 - "$WORK/oru10.hl7" <<'PY'
import sys
segs = ["MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|B1|P|2.5.1",
        "PID|1||MRN12345^^^NORTH^MR||DOE^JANE",
        "OBR|1||ORD1|CBC^Blood count^LN"]
for i in range(1, 11):
    segs.append(f"OBX|{i}|NM|C{i}^Code {i}^LN||{i}.5|mmol/L")
open(sys.argv[1], "w").write("\r".join(segs) + "\r")
PY

echo "| batch_size | messages | rows | span s | rows/s | messages/s |"
echo "| --- | --- | --- | --- | --- | --- |"
for BATCH in $BATCHES; do
    DB="corridor_bench_$$_$BATCH"
    DBS+=("$DB")
    psql -q "$PGADMIN" -c "create database $DB"
    PGURL="${PGADMIN%/*}/$DB"
    psql -q "$PGURL" -c "create table results (mrn text, code text, value numeric, unit text)"
    psql -q "$PGURL" -c "create table corridor_delivered (destination text not null, journal_id bigint not null, delivered_at timestamptz not null default clock_timestamp(), primary key (destination, journal_id))"

    cat > "$WORK/db$BATCH.toml" <<TOML
[http]
enabled = false
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:$PORT" }
[[channels.lab.destinations]]
name = "reporting"
type = "database"
url = "$PGURL"
statement = "insert into results (mrn, code, value, unit) values (\$1, \$2, \$3, \$4)"
params = ["PID-3.1", "OBX-3.1", "OBX-5", "OBX-6"]
for_each = "OBX"
batch_size = $BATCH
TOML

    start_engine "db$BATCH" "$WORK/db$BATCH.toml"
    out=$("$CORRIDOR" send --stats --to "127.0.0.1:$PORT" --connections "$CONNECTIONS" --count "$COUNT" "$WORK/oru10.hl7")
    echo "$out" | sed "s|^|# send (batch_size $BATCH): |" >&2
    delivered() { psql -qtA "$PGURL" -c 'select count(*) from corridor_delivered' 2>/dev/null || echo 0; }
    until [ "$(delivered)" -ge "$COUNT" ]; do
        kill -0 "$ENGINE_PID" 2>/dev/null || { cat "$WORK/db$BATCH.log" >&2; exit 1; }
        sleep 0.2
    done
    first=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select min(received_at) from journal').fetchone()[0])" "$WORK/db$BATCH/corridor.db")
    last=$(psql -qtA "$PGURL" -c "select (extract(epoch from max(delivered_at)) * 1000000)::bigint from corridor_delivered")
    rows=$(psql -qtA "$PGURL" -c 'select count(*) from results')
    python3 - "$BATCH" "$rows" "$COUNT" "$first" "$last" <<'PY'
import sys
batch, rows, msgs, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
span = (last - first) / 1e6
print(f"| {batch} | {msgs} | {rows} | {span:.2f} | {rows / span:.0f} | {msgs / span:.0f} |")
PY
    kill -TERM "$ENGINE_PID"
    wait "$ENGINE_PID" || true
done
