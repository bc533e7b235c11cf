#!/usr/bin/env python3
"""Generate the HL7 v2 definition files embedded in crates/hl7v2-spec/data/.

Two MIT-licensed machine-readable sources are merged:

* hl7apy (PyPI) is the backbone for every version 2.1 .. 2.8.2: message
  structures with their groups, segment field lists with cardinality and data
  type, composite data types with their components, and HL7 table codes.
* hl7-dictionary (npm) covers 2.1 .. 2.7.1 and adds what hl7apy lacks: human
  names ("Patient Identifier List"), optionality codes, maximum lengths,
  component optionality, table value descriptions and table 0354, whose
  descriptions list the trigger events each message structure serves.

Run through run.sh, which installs both sources under target/ first.
Usage: generate.py DICTIONARY_JSON OUTPUT_DIR
"""

import importlib
import json
import os
import re
import sys
from collections import Counter

VERSIONS = ["2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1",
            "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"]
# hl7apy has no 2.7.1 module; every other version comes from it.
HL7APY_MODULE = {v: "hl7apy.v" + v.replace(".", "_") for v in VERSIONS if v != "2.7.1"}
# hl7-dictionary stops at 2.7.1: the 2.8 family borrows its names from 2.7.1,
# but only where hl7apy's own element name agrees (see `borrow_name`).
DICTIONARY_FOR = {
    "2.1": "2.1", "2.2": "2.2", "2.3": "2.3", "2.3.1": "2.3.1", "2.4": "2.4",
    "2.5": "2.5", "2.5.1": "2.5.1", "2.6": "2.6", "2.7": "2.7",
    "2.8": "2.7.1", "2.8.1": "2.7.1", "2.8.2": "2.7.1",
}
GENERATED = [v for v in VERSIONS if v in HL7APY_MODULE]

# hl7-dictionary's optionality numbers, checked against the standard:
# 2 marks MSH-9 and PID-3 (R), 3 appears from 2.7 on conditional fields
# (AIG-3), 4 on the fields 2.7 withdrew (PID-2, PID-19).
OPT_CODE = {1: "O", 2: "R", 3: "C", 4: "W"}

STATS = Counter()


def norm(name):
    return re.sub(r"[^A-Z0-9]+", "_", (name or "").upper()).strip("_")


ACRONYMS = {"ID", "PID", "MSH", "HL7", "II", "III", "IV", "CE", "CWE", "DRG",
            "NDC", "UPIN", "SSN", "VIP", "URL", "EI", "OID", "DT", "TS"}


def title_from_hl7apy(name):
    """hl7apy's PATIENT_IDENTIFIER_LIST -> Patient Identifier List (fallback only)."""
    words = [w for w in name.split("_") if w]
    return " ".join(w if w in ACRONYMS else w.capitalize() for w in words)


def clean(text):
    return re.sub(r"\s+", " ", "" if text is None else str(text)).strip()


def table_number(ref):
    """hl7apy writes tables as 'HL70001'; the dictionary as the number 1."""
    if ref is None:
        return 0
    if isinstance(ref, int):
        return ref
    m = re.fullmatch(r"HL7(\d+)", str(ref))
    return int(m.group(1)) if m else 0


def by_position(children):
    """(index, child) for positions 1..n, with None where hl7apy has no
    element: its names carry the position (PID_3, XTN_2) and withdrawn
    elements are simply absent, so counting would shift every later one."""
    by_pos = {}
    for child in children:
        by_pos[int(child[0].rsplit("_", 1)[1])] = child
    for n in range(1, max(by_pos, default=0) + 1):
        yield n - 1, by_pos.get(n)


def borrow(dict_elems, index, apy_name, same_version):
    """The dictionary element describing hl7apy's element at `index`, or None.

    Within one version both sources come from the HL7 database, so position
    decides. Across versions (2.8 borrowing from 2.7.1) the names must agree too.
    """
    if dict_elems is None or index >= len(dict_elems):
        return None
    d = dict_elems[index]
    if same_version or norm(d.get("desc")) == norm(apy_name):
        return d
    return None


def reps(apy_max, d):
    if d is not None and isinstance(d.get("rep"), int):
        return d["rep"]  # 0 = unbounded, n = maximum
    return 0 if apy_max == -1 else apy_max


def correct_rsp_k11(children):
    """RSP_K11 is the segment pattern response: after QPD come whatever
    segments the query profile defines (CDC immunization responses carry
    PID, ORC, RXA, OBX...). hl7apy models it with the table-row group of
    RTB_K13 (RDF, RDT) instead; replace that group with the standard's
    wildcard so any segments may follow QPD."""
    STATS["structures corrected (RSP_K11)"] += 1
    out = []
    for child in children:
        if child[3] == "GRP" and child[0].endswith("ROW_DEFINITION"):
            out.append(("ANYHL7SEGMENT", None, (0, -1), "SEG"))
        else:
            out.append(child)
    return out


def correct_early_order_detail(children):
    """2.1 and 2.2 ORM_O01/ORR_O02: the order detail is a choice of one
    order segment <OBR|ORO|RX1>, then notes and observations with their
    notes. hl7apy 2.1 lists OBR, ORO and RX1 as a sequence, each required;
    hl7apy 2.2 drops the OBSERVATION group and makes the NTE after OBX
    required. Rebuild the choice and make that NTE optional."""
    names = [c[0] for c in children if c[3] == "SEG"]
    rebuild_choice = all(n in names for n in ("OBR", "ORO", "RX1"))
    out = []
    order_segments = []
    for child in children:
        name, ref, (cmin, cmax), kind = child
        if rebuild_choice and kind == "SEG" and name in ("OBR", "ORO", "RX1"):
            order_segments.append(name)
            continue
        if order_segments:
            out.append(("CHOICE", tuple(order_segments), (1, 1), "CHOICE"))
            STATS["structures corrected (2.1 order detail choice)"] += 1
            order_segments = []
        if kind == "SEG" and name == "NTE" and cmin >= 1 and out and out[-1][0] == "OBX":
            child = (name, ref, (0, cmax), kind)
            STATS["structures corrected (2.2 NTE after OBX)"] += 1
        out.append(child)
    if order_segments:
        out.append(("CHOICE", tuple(order_segments), (1, 1), "CHOICE"))
    return out


class VersionWriter:
    def __init__(self, version, dictionary):
        self.version = version
        self.apy = importlib.import_module(HL7APY_MODULE[version])
        dict_version = DICTIONARY_FOR[version]
        self.same_version = dict_version == version
        self.dict = dictionary["definitions"][dict_version]
        self.dict_tables = dictionary["tables"]
        self.lines = []
        self.used_types = set()
        self.used_tables = set()

    def emit(self, *cols):
        text = "\t".join(clean(c) for c in cols)
        self.lines.append(text)

    # ---- segments -------------------------------------------------------
    def segments(self):
        dsegs = self.dict["segments"]
        for seg_id in sorted(self.apy.SEGMENTS):
            entry = self.apy.SEGMENTS[seg_id]
            if entry and not isinstance(entry[0], str):
                entry = ("sequence", entry)  # hl7apy 2.1 ORO lacks the kind tag
            if entry[0] != "sequence":
                continue  # ANYHL7SEGMENT: a wildcard, not a segment
            dseg = dsegs.get(seg_id)
            desc = dseg["desc"] if dseg else ""
            self.emit("S", seg_id, desc)
            dfields = dseg["fields"] if dseg else None
            children = entry[1] if len(entry) > 1 else ()
            if not children and dfields:
                # hl7apy empties segments 2.7 withdrew (QRD, QRF, URD, URS);
                # senders still use them, so keep the dictionary's fields.
                STATS["segments from dictionary only"] += 1
                for d in dfields:
                    tbl = table_number(d.get("table"))
                    self.used_types.add(d.get("datatype") or "ST")
                    if tbl:
                        self.used_tables.add(tbl)
                    self.emit("F", d.get("datatype") or "ST", OPT_CODE.get(d.get("opt"), "O"),
                              reps(1, d), d.get("len", 0) or 0, tbl, d.get("desc", ""))
                continue
            for i, child in by_position(children):
                if child is None:
                    self.withdrawn("F", dfields, i)
                    continue
                fname, ref, (cmin, cmax), _ = child
                fdef = self.apy.FIELDS.get(fname) or ref
                dtype, apy_name, table = fdef[2], fdef[3], fdef[4]
                d = borrow(dfields, i, apy_name or "", self.same_version)
                name = d["desc"] if d else title_from_hl7apy(apy_name or "")
                if dtype is None:
                    # hl7apy leaves a few withdrawn fields untyped (2.5.1 MSA-5).
                    dtype = (d or {}).get("datatype") or "ST"
                    STATS["untyped fields in hl7apy"] += 1
                STATS["field names from dictionary" if d else "field names from hl7apy"] += 1
                if d is not None and d.get("opt") in OPT_CODE and self.same_version:
                    opt = OPT_CODE[d["opt"]]
                else:
                    opt = "R" if cmin >= 1 else "O"
                if d is not None and self.same_version and d.get("datatype") not in (None, dtype):
                    STATS["field types differing (hl7apy kept)"] += 1
                length = d.get("len", 0) if (d and self.same_version) else 0
                tbl = table_number(table) or (table_number(d.get("table")) if d else 0)
                self.used_types.add(dtype)
                if tbl:
                    self.used_tables.add(tbl)
                self.emit("F", dtype, opt, reps(cmax, d), length or 0, tbl, name)

    def withdrawn(self, kind, dict_elems, i):
        """A position hl7apy skips: the standard withdrew the element (2.6
        XTN.1, 2.8 EVN-1, OBR-...). It keeps its number, marked W."""
        STATS["withdrawn positions kept"] += 1
        d = dict_elems[i] if dict_elems is not None and i < len(dict_elems) else None
        name = (d or {}).get("desc") or "Withdrawn"
        if kind == "F":
            self.emit("F", "ST", "W", 1, 0, 0, name)
        else:
            self.emit("C", "ST", "W", 0, 0, name)

    # ---- data types -----------------------------------------------------
    def datatypes(self):
        dtypes = self.dict["fields"]
        structs = self.apy.DATATYPES_STRUCTS
        # Types referenced by components pull in further types.
        pending = set(self.used_types)
        for comps in structs.values():
            for cname, cref, _, _ in comps:
                pending.add(cref[2])
        for type_id in sorted(structs):
            ddt = dtypes.get(type_id)
            self.emit("D", type_id, ddt["desc"] if ddt else "")
            dsub = ddt.get("subfields") if ddt else None
            for i, comp in by_position(structs[type_id]):
                if comp is None:
                    self.withdrawn("C", dsub, i)
                    continue
                cname, cref, (cmin, _), _ = comp
                ctype, apy_name, table = cref[2], cref[3], cref[4]
                d = borrow(dsub, i, apy_name, self.same_version)
                name = d["desc"] if d else title_from_hl7apy(apy_name)
                if d is not None and self.same_version and d.get("opt") in OPT_CODE:
                    opt = OPT_CODE[d["opt"]]
                else:
                    opt = "R" if cmin >= 1 else "O"
                length = d.get("len", 0) if (d and self.same_version) else 0
                tbl = table_number(table) or (table_number(d.get("table")) if d else 0)
                if tbl:
                    self.used_tables.add(tbl)
                self.emit("C", ctype, opt, length or 0, tbl, name)
        for type_id in sorted(pending - set(structs)):
            ddt = dtypes.get(type_id)
            self.emit("P", type_id, ddt["desc"] if ddt else "")

    # ---- message structures ----------------------------------------------
    def structures(self):
        dmsgs = self.dict["messages"]
        for st in sorted(self.apy.MESSAGES):
            kind, children = self.apy.MESSAGES[st]
            dmsg = dmsgs.get(st)
            self.emit("M", st, dmsg["desc"] if dmsg else "")
            self.tree(st, children, 1)
        for st, (desc, tree) in sorted(self.dict_structures.items()):
            self.emit("M", st, desc)
            self.dict_tree(tree, 1)

    def tree(self, st, children, depth):
        if st == "RSP_K11" and depth == 1 and self.version not in ("2.1", "2.2", "2.3", "2.3.1"):
            children = correct_rsp_k11(children)
        if self.version in ("2.1", "2.2") and st in ("ORM_O01", "ORR_O02"):
            children = correct_early_order_detail(children)
        for name, ref, (cmin, cmax), kind in children:
            if kind == "CHOICE":
                # A choice the correction below rebuilt: its alternatives follow.
                self.emit("g", depth, "c", cmin, cmax, name)
                for alt in ref:
                    self.emit("s", depth + 1, 1, 1, alt)
                continue
            cmax = 0 if cmax == -1 else cmax
            if kind == "SEG":
                self.emit("s", depth, cmin, cmax, name)
            else:
                gkind, gchildren = self.apy.GROUPS[name]
                short = name[len(st) + 1:] if name.startswith(st + "_") else name
                self.emit("g", depth, "c" if gkind == "choice" else "q", cmin, cmax, short)
                self.tree(st, gchildren, depth + 1)

    # ---- tables -----------------------------------------------------------
    def tables(self):
        apy_tables = getattr(self.apy, "TABLES", {})
        by_number = {}
        for key, (tname, codes) in apy_tables.items():
            n = table_number(key)
            if n:
                by_number[n] = (tname, list(codes))
        # hl7apy ships no tables before 2.3.1: those versions get the
        # dictionary's (version-less) values for the tables their fields name.
        for n in sorted(self.used_tables):
            if n not in by_number and str(n) in self.dict_tables:
                dt = self.dict_tables[str(n)]
                by_number[n] = (dt.get("desc", ""), list(dt.get("values", {}).keys()))
                STATS["tables from dictionary only"] += 1
        for n in sorted(by_number):
            tname, codes = by_number[n]
            dvalues = self.dict_tables.get(str(n), {}).get("values", {})
            self.emit("T", n, tname)
            seen = set()
            # hl7apy's later tables lag the standard (2.5.1 0125 lacks CWE):
            # the dictionary's values, from a later edition, are added, so a
            # code is refused only when neither source knows it.
            extra = [c for c in dvalues if c not in codes]
            if extra:
                STATS["table values added from dictionary"] += len(extra)
            for code in list(codes) + extra:
                code = clean(code)
                if not code or code in seen:
                    continue
                seen.add(code)
                self.emit("v", code, dvalues.get(code, ""))
        return by_number

    # ---- event -> structure map ---------------------------------------------
    def plan_events(self):
        """The event map, and the structures only the dictionary knows."""
        structures = set(self.apy.MESSAGES)
        mapping = {}
        self.dict_structures = {}
        # A structure named after the event serves that event (2.1 and 2.2
        # define one per event, e.g. ADT_A04); this wins over table 0354.
        for st in structures:
            m = re.fullmatch(r"([A-Z0-9]{3})_([A-Z0-9]{3})", st)
            if m:
                mapping[(m.group(1), m.group(2))] = st
        t354 = self.dict_tables.get("354", {}).get("values", {})
        for st, desc in t354.items():
            if st not in structures or "_" not in st:
                continue
            msg_type = st.split("_")[0]
            for ev in re.split(r"[,\s]+", desc):
                if re.fullmatch(r"[A-Z0-9]{3}", ev):
                    mapping.setdefault((msg_type, ev), st)
        # Events the dictionary lists as their own messages (2.3's ADT_A05)
        # that table 0354 does not place: the structure whose segments,
        # groups and cardinalities equal the event's serves it; when none
        # does, the event has a structure of its own in the standard that
        # hl7apy lacks (2.5's RSP_K22, where QRI is optional and the query
        # response repeats), built from the dictionary's tree.
        if self.same_version:
            flat_struct = {st: self.flatten_apy(self.apy.MESSAGES[st][1]) for st in structures}
            for key, msg in sorted(self.dict["messages"].items()):
                m = re.fullmatch(r"([A-Z0-9]{3})_([A-Z0-9]{3})", key)
                ev = m and (m.group(1), m.group(2))
                if not m or key in structures or ev in mapping:
                    continue
                tree = msg["segments"]["segments"]
                wanted = self.flatten_dict(tree)
                same = [st for st in sorted(structures)
                        if st.startswith(m.group(1) + "_") and flat_struct[st] == wanted]
                if len(same) == 1:
                    mapping[ev] = same[0]
                    STATS["event map entries from segment lists"] += 1
                elif not same and all(self.known_segments(tree)):
                    self.dict_structures[key] = (msg.get("desc", ""), tree)
                    mapping[ev] = key
                    STATS["structures from dictionary only"] += 1
        self.mapping = mapping

    def known_segments(self, children):
        for c in children:
            if "children" in c:
                yield from self.known_segments(c["children"])
            else:
                yield c["name"] in self.apy.SEGMENTS

    def events(self):
        for (msg_type, ev), st in sorted(self.mapping.items()):
            self.emit("E", msg_type, ev, st)

    def dict_tree(self, children, depth):
        for c in children:
            cmin, cmax = c.get("min", 0), c.get("max", 0)
            if "children" in c:
                self.emit("g", depth, "q", cmin, cmax, c["name"])
                self.dict_tree(c["children"], depth + 1)
            else:
                self.emit("s", depth, cmin, cmax, c["name"])

    def flatten_apy(self, children):
        out = []
        for name, ref, (cmin, cmax), kind in children:
            cmax = 0 if cmax == -1 else cmax
            if kind == "SEG":
                out.append((name, cmin, cmax))
            else:
                out.append(("(", cmin, cmax))
                out.extend(self.flatten_apy(self.apy.GROUPS[name][1]))
                out.append((")",))
        return tuple(out)

    def flatten_dict(self, children):
        out = []
        for c in children:
            if "children" in c:
                out.append(("(", c.get("min", 0), c.get("max", 0)))
                out.extend(self.flatten_dict(c["children"]))
                out.append((")",))
            else:
                out.append((c["name"], c.get("min", 0), c.get("max", 0)))
        return tuple(out)

    def write(self, out_dir, header):
        self.lines = []
        self.emit("V", self.version)
        self.plan_events()
        self.segments()
        self.datatypes()
        self.structures()
        self.events()
        self.tables()
        path = os.path.join(out_dir, self.version + ".hl7spec")
        with open(path, "w", encoding="utf-8") as f:
            f.write(header)
            f.write("\n".join(self.lines))
            f.write("\n")
        return path


def main():
    dict_json, out_dir = sys.argv[1], sys.argv[2]
    with open(dict_json, encoding="utf-8") as f:
        dictionary = json.load(f)
    from importlib.metadata import version as installed_version
    apy_version = installed_version("hl7apy")
    header = (
        "# Generated by tools/spec-gen/generate.py - do not edit.\n"
        f"# Sources: hl7apy {apy_version} (MIT, CRS4) and hl7-dictionary "
        f"{dictionary.get('_version', '')} (MIT, Fernando Serrano).\n"
        "# Record kinds: see crates/hl7v2-spec/src/load.rs.\n"
    )
    os.makedirs(out_dir, exist_ok=True)
    for version in GENERATED:
        path = VersionWriter(version, dictionary).write(out_dir, header)
        print(f"{path}: {os.path.getsize(path)} bytes")
    for k, v in sorted(STATS.items()):
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
