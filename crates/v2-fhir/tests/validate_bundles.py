"""Validates FHIR R4 transaction Bundles, one JSON per line on stdin, with the
R4B models of fhir.resources. Prints one line per invalid Bundle (its label,
given as the first tab-separated field, and the errors) and exits 1 if any."""

import json
import sys

from fhir.resources.R4B.bundle import Bundle

failures = 0
count = 0
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    label, _, payload = line.partition("\t")
    count += 1
    try:
        Bundle.model_validate(json.loads(payload))
    except Exception as error:  # every validation problem is reported
        failures += 1
        text = str(error).replace("\n", " | ")
        print(f"{label}: {text[:3000]}")
print(f"validated {count} bundles, {failures} invalid", file=sys.stderr)
sys.exit(1 if failures else 0)
