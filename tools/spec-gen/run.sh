#!/usr/bin/env bash
# Regenerates crates/hl7v2-spec/data/*.hl7spec from the pinned sources.
# Installs hl7apy (PyPI) and hl7-dictionary (npm) under target/spec-src/,
# which is not committed. Needs python3 (3.8+), node and npm.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$ROOT/target/spec-src"
HL7APY_VERSION=1.3.5
DICTIONARY_VERSION=1.0.1

mkdir -p "$WORK/npm"
[ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet "hl7apy==$HL7APY_VERSION"
(cd "$WORK/npm" && [ -f package.json ] || npm init -y >/dev/null)
(cd "$WORK/npm" && npm install --silent --no-audit --no-fund "hl7-dictionary@$DICTIONARY_VERSION")

node "$ROOT/tools/spec-gen/dump_dictionary.js" "$WORK/npm/node_modules/hl7-dictionary" > "$WORK/dictionary.json"
"$WORK/venv/bin/python" "$ROOT/tools/spec-gen/generate.py" "$WORK/dictionary.json" "$ROOT/crates/hl7v2-spec/data"
