"""Runs inside the pypmml venv: times pypmml on the benchmark's rows and writes its numbers and answers as JSON.

Usage: python peer_pypmml.py MODEL.pmml ROWS.csv REPS SINGLE OUT.json
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
from pypmml import Model


def main() -> None:
    pmml, csv, reps, single, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    rows = pd.read_csv(csv)
    started = time.perf_counter()
    model = Model.load(pmml)
    load_s = time.perf_counter() - started
    answers = model.predict(rows)
    batch = []
    for _ in range(reps):
        started = time.perf_counter()
        model.predict(rows)
        batch.append(time.perf_counter() - started)
    records = rows.head(single).to_dict("records")
    times = []
    for record in records:
        started = time.perf_counter()
        model.predict(record)
        times.append((time.perf_counter() - started) * 1e3)
    with open(out, "w") as f:
        json.dump(
            {
                "load_s": load_s,
                "batch_s": batch,
                "single_ms": times,
                "answers": {c: answers[c].tolist() for c in answers.columns},
            },
            f,
        )
    model.close()


if __name__ == "__main__":
    main()
