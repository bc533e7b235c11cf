#!/bin/sh
# `corridor get FILE MSH-10 PID-3 OBX-5` over 100,000 copies of the 1.5 KB
# ORU^R01 (each with its own MSH-10), against the same extraction with
# python-hl7 and the Node parsers node-hl7-client and simple-hl7, measured in
# one hyperfine run. Results and the machine's load go in BENCHMARKS.md.
#
# usage: scripts/bench/compare_get.sh [CORRIDOR_BINARY]   (default: target/release/corridor)
set -eu
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/corridor}
FILE=target/oru-100k.hl7
SMALL=target/oru-1k.hl7
PY=target/py-venv-hl7/bin/python

[ -f "$FILE" ] || python3 scripts/bench/make_oru_file.py "$FILE" 100000
python3 scripts/bench/make_oru_file.py "$SMALL" 1000
scripts/test-peers hl7
if [ ! -d target/node-bench/node_modules/simple-hl7 ]; then
    mkdir -p target/node-bench
    (cd target/node-bench && npm init -y >/dev/null &&
        npm install --no-audit --no-fund node-hl7-client@3.2.0 simple-hl7@3.3.0)
fi
NODE_PATH=$PWD/target/node-bench/node_modules
export NODE_PATH

# Every contender extracts the same values (this ORU has no escape sequences,
# so the Node parsers' raw values equal the unescaped ones).
"$BIN" get "$SMALL" MSH-10 PID-3 OBX-5 > target/get-corridor.txt
"$PY" scripts/bench/get_python_hl7.py "$SMALL" > target/get-python.txt
node scripts/bench/get_node.js node-hl7-client "$SMALL" > target/get-node-hl7-client.txt
node scripts/bench/get_node.js simple-hl7 "$SMALL" > target/get-simple-hl7.txt
for other in python node-hl7-client simple-hl7; do
    cmp target/get-corridor.txt "target/get-$other.txt"
done
test "$(wc -l < target/get-corridor.txt)" -eq 3000

uptime
hyperfine --runs 2 --export-markdown target/compare_get.md \
    -n corridor "$BIN get $FILE MSH-10 PID-3 OBX-5" \
    -n node-hl7-client "node scripts/bench/get_node.js node-hl7-client $FILE" \
    -n simple-hl7 "node scripts/bench/get_node.js simple-hl7 $FILE" \
    -n python-hl7 "$PY scripts/bench/get_python_hl7.py $FILE"
uptime
