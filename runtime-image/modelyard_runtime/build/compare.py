"""How far a derived model's outputs are from its parent's, and whether that passes a gate. Pure numpy.

``maxAbsDiff`` and ``rmse`` are taken over every element of every float output. ``top1Agreement`` is the share of
rows on which the two models name the same class: the arg-max of a float output whose last dimension holds two or
more classes, or the value itself of an integer or string output (a predicted label). With several such outputs the
lowest share counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Outputs = dict[str, npt.NDArray[Any]]


@dataclass
class Agreement:
    rows: int = 0
    elements: int = 0
    max_abs_diff: float = 0.0
    squared: float = 0.0
    top1_rows: int = 0
    top1_same: dict[str, int] = field(default_factory=dict)
    top1_total: dict[str, int] = field(default_factory=dict)

    @property
    def rmse(self) -> float:
        return float(np.sqrt(self.squared / self.elements)) if self.elements else 0.0

    @property
    def top1_agreement(self) -> float | None:
        shares = [self.top1_same[k] / n for k, n in self.top1_total.items() if n]
        return min(shares) if shares else None

    def add(self, parent: Outputs, derived: Outputs) -> None:
        """Count one batch of outputs; ValueError when the derived model's outputs do not match the parent's."""
        if set(parent) != set(derived):
            raise ValueError(f"the derived model's outputs {sorted(derived)} differ from the parent's {sorted(parent)}")
        rows = 0
        for name, p in parent.items():
            d = derived[name]
            if p.shape != d.shape:
                raise ValueError(
                    f"output {name!r}: the derived model gives shape {list(d.shape)}, the parent {list(p.shape)}"
                )
            rows = max(rows, p.shape[0] if p.ndim else 1)
            if p.dtype.kind == "f":
                diff = np.abs(p.astype(np.float64) - d.astype(np.float64))
                finite = np.isfinite(diff)
                if not finite.all():  # a NaN or infinity on one side only is the largest difference there is
                    same = (np.isnan(p) & np.isnan(d)) | (p == d)
                    diff = np.where(same, 0.0, np.where(finite, diff, np.inf))
                if diff.size:
                    self.max_abs_diff = max(self.max_abs_diff, float(diff.max()))
                    self.squared += float(np.square(diff[np.isfinite(diff)]).sum())
                    self.elements += int(diff.size)
                if p.ndim >= 2 and p.shape[-1] >= 2:
                    self._top1(name, p.argmax(axis=-1), d.argmax(axis=-1))
            elif p.dtype.kind in "iubUSO":
                self._top1(name, p, d)
        self.rows += rows

    def _top1(self, name: str, p: npt.NDArray[Any], d: npt.NDArray[Any]) -> None:
        same = (p == d).reshape(p.shape[0], -1).all(axis=1) if p.ndim else np.array([bool(p == d)])
        self.top1_same[name] = self.top1_same.get(name, 0) + int(same.sum())
        self.top1_total[name] = self.top1_total.get(name, 0) + int(same.size)


def verdict(agreement: Agreement, max_abs_diff: float | None, rmse: float | None,
            top1: float | None) -> list[str]:  # fmt: skip
    """The thresholds the numbers miss, each as a sentence; empty when the gate passes."""
    failures = []
    if max_abs_diff is not None and not agreement.max_abs_diff <= max_abs_diff:
        failures.append(f"maxAbsDiff {agreement.max_abs_diff:.6g} is above {max_abs_diff:g}")
    if rmse is not None and not agreement.rmse <= rmse:
        failures.append(f"rmse {agreement.rmse:.6g} is above {rmse:g}")
    if top1 is not None:
        share = agreement.top1_agreement
        if share is None:
            failures.append("top1Agreement: the model has no class output (scores over two or more classes, or labels)")
        elif share < top1:
            failures.append(f"top1Agreement {share:.4f} is below {top1:g}")
    return failures
