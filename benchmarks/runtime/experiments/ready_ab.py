"""A/B of modelyard-server's time to ready: another checkout's runtime against this one, with the bare row.

Usage: ``.venv/bin/python benchmarks/runtime/experiments/ready_ab.py OTHER/runtime-image [ROUNDS]`` (e.g. a
``git worktree add /tmp/old REV``). Each round spawns the bare ONNX Runtime process (``bench.time_bare``), then both
servers in alternating order (``bench.time_server``, HTTP: spawn -> ready -> first inference); each checkout's
``runtime-image`` is put first on ``PYTHONPATH`` in its turn. Prints each round and the medians with their
ratios to bare.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench

import models

THIS = Path(__file__).resolve().parents[3] / "runtime-image"


def main() -> None:
    other, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 9
    work = Path(tempfile.gettempdir()) / "modelyard-ready-ab"
    model = work / "repo" / "big" / "1" / "model.onnx"
    if not model.exists():
        model.parent.mkdir(parents=True, exist_ok=True)
        models.big(model)
    width = models.BIG_LAYERS[0]
    bench.compile_runtime(Path(other) / "modelyard_runtime", THIS / "modelyard_runtime")  # both from bytecode
    seen: dict[str, list[float]] = {"bare": [], "other": [], "this": []}
    for number in range(rounds):
        seen["bare"].append(bench.time_bare(model, width)["spawn_to_done_s"])
        for name in ("other", "this") if number % 2 == 0 else ("this", "other"):
            # both sides come first on PYTHONPATH, so each imports through the same path finder (the venv's own
            # install is an editable one, found by a different finder: not the same cost)
            os.environ["PYTHONPATH"] = other if name == "other" else str(THIS)
            timing = bench.time_server("modelyard", "http", model.parents[2], work, width)
            seen[name].append(timing["spawn_to_first_inference_s"])
        print(number, {k: round(v[-1], 3) for k, v in seen.items()}, flush=True)
    median = {k: statistics.median(v) for k, v in seen.items()}
    print("median", {k: round(v, 3) for k, v in median.items()},
          "ratio to bare: other", round(median["other"] / median["bare"], 3),
          "this", round(median["this"] / median["bare"], 3))  # fmt: skip


if __name__ == "__main__":
    main()
