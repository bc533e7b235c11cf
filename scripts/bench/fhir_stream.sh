#!/usr/bin/env bash
# `corridor fhir --ndjson` on a large file (default 1 GB of the 1.5 KB
# ORU^R01, each copy with its own MSH-10): peak resident memory, wall time,
# CPU time in user and kernel mode, and throughput in messages and MB per
# second. Memory should stay flat whatever SIZE_MB is; compare two sizes.
#
# usage: scripts/bench/fhir_stream.sh [SIZE_MB=1024]
#   SKIP_BUILD=1       use the release binary already built
#   CORRIDOR_BIN=PATH  measure another binary (e.g. target/debug/corridor)
set -euo pipefail
source "$(dirname "$0")/common.sh"
BIN="${CORRIDOR_BIN:-$CORRIDOR}"
SIZE_MB="${1:-1024}"

ORU_BYTES=$(wc -c < "$ORU")
COUNT=$(( SIZE_MB * 1024 * 1024 / ORU_BYTES ))
INPUT="$TARGET/fhir-stream-${COUNT}.hl7"
if [ ! -f "$INPUT" ]; then
    echo "# writing $COUNT messages to $INPUT" >&2
    python3 "$ROOT/scripts/bench/make_oru_file.py" "$INPUT.tmp" "$COUNT"
    mv "$INPUT.tmp" "$INPUT"
fi
INPUT_BYTES=$(wc -c < "$INPUT")

# The output goes through a pipe to a counter, never to disk; the peak
# resident memory (VmHWM) is read from /proc while the command runs.
mkfifo "$WORK/out"
wc -lc < "$WORK/out" > "$WORK/count" &
COUNTER=$!
START=$(date +%s.%N)
"$BIN" fhir --ndjson "$INPUT" > "$WORK/out" &
PID=$!
PIDS+=("$PID")
PEAK_KB=0
while kill -0 "$PID" 2>/dev/null; do
    read -r UTIME STIME < <(awk '{print $14, $15}' "/proc/$PID/stat" 2>/dev/null || echo "0 0")
    KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
    [ "${KB:-0}" -gt "$PEAK_KB" ] && PEAK_KB=$KB
    sleep 0.2
done
STATUS=0
wait "$PID" || STATUS=$?
END=$(date +%s.%N)
wait "$COUNTER"
read -r LINES OUT_BYTES < "$WORK/count"
TICKS=$(getconf CLK_TCK)

python3 - "$SIZE_MB" "$COUNT" "$INPUT_BYTES" "$LINES" "$OUT_BYTES" "$PEAK_KB" \
    "$START" "$END" "$UTIME" "$STIME" "$TICKS" "$STATUS" <<'PY'
import sys
(size_mb, count, input_bytes, lines, out_bytes, peak_kb,
 start, end, utime, stime, ticks, status) = sys.argv[1:]
seconds = float(end) - float(start)
print(f"input            {int(input_bytes) / 2**20:.0f} MB, {int(count)} messages")
print(f"exit status      {status}")
print(f"bundles written  {int(lines)} lines, {int(out_bytes) / 2**20:.0f} MB")
print(f"peak resident    {int(peak_kb) / 1024:.1f} MB (VmHWM)")
print(f"wall time        {seconds:.1f} s")
# CPU times as last sampled, a fraction of a second before the end.
print(f"cpu user/kernel  {int(utime) / int(ticks):.1f} s / {int(stime) / int(ticks):.1f} s")
print(f"throughput       {int(count) / seconds:.0f} messages/s, "
      f"{int(input_bytes) / 2**20 / seconds:.1f} MB/s of input")
if int(lines) != int(count) or status != "0":
    sys.exit("not every message became a Bundle")
PY
