"""Drives Corridor's FHIR API with fhirpy (PyPI), as an application would.

Run by tests/fhirpy_client.rs with the base URL and a JSON object of what the
repository holds; exits non-zero, saying which check failed, on any mismatch.
"""

import json
import sys

from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

base, expected = sys.argv[1], json.loads(sys.argv[2])
client = SyncFHIRClient(base)
checks = 0


def check(what, got, want):
    global checks
    checks += 1
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


# Search.
found = client.resources("Observation").search(code="http://loinc.org|718-7").fetch()
check("search by code", [o["code"]["coding"][0]["code"] for o in found], ["718-7"])
found = client.resources("Patient").search(identifier="urn:corridor:id/GHH|P100").get()
check("get by identifier", found.id, expected["patient"])

# count(): _count=0 with fhirpy's _totalMethod, which Corridor ignores and names.
check("count", client.resources("Patient").search(family="page").count(), 7)
check("count all", client.resources("Observation").count(), 2)

# Paging: fetch_all follows the next links.
ids = [p.id for p in client.resources("Patient").search(family="page").limit(3).fetch_all()]
check("paging sees every match once", sorted(ids), sorted(expected["page_ids"]))

# Sort, across pages.
ids = [p.id for p in client.resources("Patient").search(family="page").sort("-birthdate").limit(2).fetch_all()]
check("sort -birthdate", ids, expected["youngest_first"])
ids = [p.id for p in client.resources("Patient").search(family="page").sort("_lastUpdated").fetch_all()]
check("sort _lastUpdated", ids, expected["page_ids"])
first = client.resources("Patient").search(family="page").sort("birthdate").first()
check("first by birthdate", first.id, expected["youngest_first"][-1])

# _lastUpdated with a prefix.
check(
    "_lastUpdated ge",
    client.resources("Patient").search(family="page", _lastUpdated__ge=expected["fifth_arrived"]).count(),
    3,
)

# Include and revinclude.
bundle = (
    client.resources("Observation")
    .search(code="http://loinc.org|718-7")
    .include("Observation", "patient")
    .fetch_raw()
)
modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"])
check("include", modes, [("include", "Patient"), ("match", "Observation")])
bundle = (
    client.resources("Patient")
    .search(_id=expected["patient"])
    .revinclude("Observation", "patient")
    .fetch_raw()
)
modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"])
check("revinclude", modes, [("include", "Observation"), ("include", "Observation"), ("match", "Patient")])

# Chained search through the patient reference.
found = client.resources("Observation").search(patient__identifier="urn:corridor:id/GHH|P100").fetch()
check("chain patient.identifier", len(found), 2)

# _elements.
subset = client.resources("Patient").search(_id=expected["patient"]).elements("gender").get()
check("elements keep gender", subset["gender"], "female")
check("elements drop name", subset.get("name"), None)

# Conditional read: refresh() sends If-None-Match with the version it holds.
patient = client.reference("Patient", expected["patient"]).to_resource()
check("read", patient["meta"]["versionId"], "1")
_, status = client._do_request(
    "get", f"Patient/{patient.id}", extra_headers={"If-None-Match": "1"}, returning_status=True
)
check("If-None-Match current", status, 304)
_, status = client._do_request(
    "get", f"Patient/{patient.id}", extra_headers={"If-None-Match": 'W/"0"'}, returning_status=True
)
check("If-None-Match stale", status, 200)
patient.refresh()
check("refresh keeps the resource on 304", patient.id, expected["patient"])

# A client that asks for strict handling gets an error for what Corridor ignores.
strict = SyncFHIRClient(base, extra_headers={"Prefer": "handling=strict"})
try:
    strict.resources("Patient").count()
    sys.exit("strict count: no error for _totalMethod")
except OperationOutcome as e:
    check("strict names the parameter", "_totalMethod" in str(e), True)

# _summary=count and _total.
raw = client.resources("Patient").search(family="page", _summary="count").fetch_raw()
check("_summary=count total", raw["total"], 7)
check("_summary=count entries", raw.get("entry"), None)
raw = client.resources("Patient").search(family="page", _total="none").limit(3).fetch_raw()
check("_total=none", "total" in raw, False)

# A client that asks for XML is told it cannot have it.
xml = SyncFHIRClient(base, extra_headers={"Accept": "application/fhir+xml"})
try:
    xml.resources("Patient").fetch()
    sys.exit("Accept XML: JSON came back")
except OperationOutcome as e:
    check("Accept XML is refused", "JSON only" in str(e), True)

print(f"fhirpy: {checks} checks passed")
