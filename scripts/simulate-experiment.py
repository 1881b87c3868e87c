#!/usr/bin/env python3
"""Replays raw purchases against a running server and sends each one's
outcome back as feedback, as a bank's systems would once the purchase is
known to be revenge spending or not.

The rows are the last --rows of the raw files (the bank's format: `;`,
cp1252, header included), sent as JSON in their raw field names to
POST /predict/batch in batches of --batch; the feedback for a batch is sent
one batch later (late feedback), as a JSON array to POST /feedback. The
outcome is the label rule build-features applies (available share of the
limit below --threshold-pct and a non-vital merchant group; the defaults are
params.yaml's build_features.target), so the variant that decides better
earns more reward.

Prints the share of requests each variant answered per tenth of the stream
and writes nothing else: the server's prediction log is the record.

    scripts/simulate-experiment.py --url http://127.0.0.1:8000 --raw 'data/raw/*.csv'

Standard library only."""

import argparse
import csv
import glob
import io
import json
import sys
import unicodedata
import urllib.error
import urllib.request

VITAL = ["SERVICO", "SUPERMERCADOS", "FARMACIAS", "HOSP E CLINICA", "TRANS FINANC"]


def normalise_group(text):
    """The merchant group as build-features normalises it: SERVI\\x82O (cp1252
    0x82 is U+201A) and SERVIÇO read as SERVICO."""
    text = text.strip().upper().replace("\u201a", "C")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def amount(text):
    """A limit as the file writes it: `5800.0`, or Brazilian `5.800,00`."""
    text = text.strip()
    if "," in text:
        text = text.replace(".", "").replace(",", ".")
    return float(text)


def is_revenge(row, threshold_pct, vital):
    total = amount(row["limite_total"])
    available = 100.0 * amount(row["limite_disp"]) / total if total > 0 else 0.0
    return available < threshold_pct and normalise_group(row["grupo_estabelecimento"]) not in vital


def read_rows(pattern):
    rows = []
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as f:
            text = f.read().decode("cp1252")
        rows.extend(csv.DictReader(io.StringIO(text), delimiter=";"))
    return rows


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        sys.exit(f"simulate-experiment: {url} answered {e.code}: {e.read().decode(errors='replace')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--raw", default="data/raw/*.csv", help="raw files (glob)")
    parser.add_argument("--rows", type=int, default=6000, help="the last this many rows are replayed")
    parser.add_argument("--batch", type=int, default=100, help="rows per request")
    parser.add_argument("--threshold-pct", type=float, default=20.0)
    parser.add_argument("--vital", default=",".join(VITAL), help="vital merchant groups, comma-separated")
    args = parser.parse_args()
    vital = {g.strip() for g in args.vital.split(",")}

    rows = read_rows(args.raw)[-args.rows :]
    if not rows:
        sys.exit(f"simulate-experiment: no rows in {args.raw}")
    served = []  # the variant of each scored row, in order
    pending = []  # feedback waiting one batch
    sent = accepted = refused_rows = 0
    for start in range(0, len(rows), args.batch):
        chunk = rows[start : start + args.batch]
        answer = post(f"{args.url}/predict/batch", [{k.strip(): v for k, v in r.items()} for r in chunk])
        if pending:
            result = post(f"{args.url}/feedback", pending)
            accepted += result["accepted"]
            sent += len(pending)
        pending = []
        for item in answer["results"]:
            if "prediction_id" not in item:
                refused_rows += 1
                continue
            served.append(item["variant"])
            outcome = is_revenge(chunk[item["index"]], args.threshold_pct, vital)
            pending.append({"prediction_id": item["prediction_id"], "outcome": outcome})
    if pending:
        result = post(f"{args.url}/feedback", pending)
        accepted += result["accepted"]
        sent += len(pending)

    variants = sorted(set(served))
    print(f"{len(served)} predictions ({refused_rows} rows refused by the row rules), "
          f"{accepted} of {sent} feedbacks accepted")
    print("tenth  " + "  ".join(f"{v:>12}" for v in variants))
    tenth = max(1, len(served) // 10)
    for i in range(10):
        part = served[i * tenth : (i + 1) * tenth] if i < 9 else served[9 * tenth :]
        if part:
            print(f"{i + 1:>5}  " + "  ".join(f"{part.count(v) / len(part):>12.3f}" for v in variants))
    if accepted != sent:
        sys.exit(f"simulate-experiment: {sent - accepted} feedbacks were refused")


if __name__ == "__main__":
    main()
