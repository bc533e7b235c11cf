"""Validates HL7 v2 files with hl7apy and prints what it finds as JSON.

Usage: python crosscheck.py FILE...
Output: one JSON object: {file: {"version": v, "error": text | null,
"findings": [[kind, parent, child], ...]}}, where kind is "missing"
(a required child is absent) or "too_many" (a child limit is exceeded);
hl7apy's other complaints are listed as ["other", text, ""].
"""

import json
import re
import sys
import tempfile

from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from hl7apy.validation import Validator
from hl7apy.consts import VALIDATION_LEVEL

SUPPORTED = {"2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2"}


def check(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace").lstrip("\ufeff")
    text = "\r".join(l for l in re.split(r"\r\n|\r|\n", text) if l.strip())
    result = {"version": None, "error": None, "findings": []}
    try:
        msg = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    except Exception as e:  # hl7apy raises many kinds; any is "could not parse"
        result["error"] = "parse: %s" % type(e).__name__
        return result
    result["version"] = msg.version
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        try:
            Validator.validate(msg, report_file=report.name)
        except HL7apyException:
            pass
        except Exception as e:
            result["error"] = "validate: %s" % type(e).__name__
            return result
        report.seek(0)
        for line in report.read().splitlines():
            m = re.match(r"Error: Missing required child (\S+)\.(\S+)$", line)
            if m:
                result["findings"].append(["missing", m.group(1), m.group(2)])
                continue
            m = re.match(r"Error: Child limit exceeded (\S+)\.(\S+)$", line)
            if m:
                result["findings"].append(["too_many", m.group(1), m.group(2)])
                continue
            if line.startswith("Error:"):
                result["findings"].append(["other", line[7:], ""])
    return result


def main():
    out = {}
    for path in sys.argv[1:]:
        out[path] = check(path)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
