#!/usr/bin/env python3
"""`corridor get FILE MSH-10 PID-3 OBX-5` done with python-hl7: the first
repetition of each field, unescaped, one line per message and path.

usage: get_python_hl7.py FILE (segments end in CR; a message starts at MSH)
"""
import sys

import hl7

PATHS = [("MSH", 10), ("PID", 3), ("OBX", 5)]


def first_repetition(message, name, n):
    try:
        segment = message.segment(name)
    except KeyError:
        return ""
    if n >= len(segment):
        return ""
    field = segment[n]
    return message.unescape(str(field[0] if len(field) else ""))


data = open(sys.argv[1], encoding="utf-8", newline="").read()
out = []
for i, chunk in enumerate(data.split("\rMSH|")):
    text = chunk if i == 0 else "MSH|" + chunk
    message = hl7.parse(text)
    for name, n in PATHS:
        out.append(first_repetition(message, name, n))
sys.stdout.write("\n".join(out) + "\n")
