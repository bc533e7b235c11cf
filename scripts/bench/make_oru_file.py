#!/usr/bin/env python3
"""Writes N copies of the 1.5 KB ORU^R01 of the hl7v2 benchmark, each with
its own MSH-10, segments ending in CR: the input of compare_get.sh.

usage: make_oru_file.py OUT [N=100000]
"""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ORU = (HERE / "../../crates/hl7v2/tests/data/oru_r01_1500.hl7").read_bytes()

out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
fields = ORU.split(b"|")
assert fields[9] == b"NIST-100929110701660", fields[9]
with open(out, "wb") as f:
    for n in range(count):
        fields[9] = b"NIST-%012d" % n
        f.write(b"|".join(fields))
