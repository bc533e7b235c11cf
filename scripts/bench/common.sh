# Shared by the benchmark scripts (sourced, not run): the paths, a work folder and the
# processes to stop at exit, and the release build unless SKIP_BUILD is set.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
ORU="$ROOT/crates/hl7v2/tests/data/oru_r01_1500.hl7"
CORRIDOR="$TARGET/release/corridor"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "# building release binary" >&2
    (cd "$ROOT" && cargo build --release -p corridor --quiet)
fi
