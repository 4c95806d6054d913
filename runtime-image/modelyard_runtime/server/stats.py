"""Per-version counters of the statistics extension (``/v2/models/.../stats``), in Triton's JSON shape."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from modelyard_runtime.server.batcher import Timing

PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class Stat:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    inference_count: int = 0  # rows (samples) inferred
    execution_count: int = 0  # model executions; fewer than requests when batched
    last_inference_ms: int = 0
    success: Stat = field(default_factory=Stat)
    fail: Stat = field(default_factory=Stat)
    phases: dict[str, Stat] = field(default_factory=lambda: {p: Stat() for p in PHASES})
    batches: dict[int, dict[str, Stat]] = field(default_factory=dict)

    def record_success(self, total_ns: int, rows: int, timing: Timing) -> None:
        self.success.add(total_ns)
        self.inference_count += rows
        self.last_inference_ms = int(time.time() * 1000)
        for phase, ns in zip(
            PHASES, (timing.queue_ns, timing.input_ns, timing.infer_ns, timing.output_ns), strict=True
        ):
            self.phases[phase].add(ns)
        if timing.leader:
            self.execution_count += 1
            per_size = self.batches.setdefault(timing.batch_size, {p: Stat() for p in PHASES[1:]})
            per_size["compute_input"].add(timing.input_ns)
            per_size["compute_infer"].add(timing.infer_ns)
            per_size["compute_output"].add(timing.output_ns)

    def record_failure(self, total_ns: int) -> None:
        self.fail.add(total_ns)

    def to_json(self, name: str, version: str) -> dict[str, Any]:
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_json(),
                "fail": self.fail.to_json(),
                **{p: s.to_json() for p, s in self.phases.items()},
            },
            "batch_stats": [
                {"batch_size": size, **{p: s.to_json() for p, s in phases.items()}}
                for size, phases in sorted(self.batches.items())
            ],
        }
