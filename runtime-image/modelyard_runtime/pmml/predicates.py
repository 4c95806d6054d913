"""PMML predicates as tree nodes, with PMML's three-valued logic (pure).

A predicate is true, false or unknown (it reads a missing value). :func:`emit` writes the nodes that decide it into
slot ``at`` of a tree and calls ``outcome(result, slot)`` for each slot that a result reaches, so the caller puts the
child, the next sibling or the missing-value strategy's answer there. A slot reached by several paths is filled
once per path (trees are trees, not graphs), which keeps every path exact. A field whose invalid values fail the row
is tested first for one (``invalid``: the caller puts a missing leaf there, so the row's result is missing).

- ``SimplePredicate``: a missing check (``BRANCH_LT`` against -inf, which only a missing value passes through
  ``missing_value_tracks_true``), then one comparison; on a string field the value is its category's code. A path
  checks each field once: below a check, the field is known to be present (or missing) and is not tested again,
  which keeps the paths short (a tree that splits on few fields mostly compares).
- ``SimpleSetPredicate``: the missing check, then one ``BRANCH_EQ`` per member of the set.
- ``CompoundPredicate``: ``and``/``or`` (Kleene: false and unknown is false, true or unknown is true), ``xor``
  (unknown if any part is), ``surrogate`` (the first part that is not unknown).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from typing import Protocol

from .document import Element

MODES = {
    "lessThan": "BRANCH_LT",
    "lessOrEqual": "BRANCH_LEQ",
    "greaterThan": "BRANCH_GT",
    "greaterOrEqual": "BRANCH_GTE",
    "equal": "BRANCH_EQ",
    "notEqual": "BRANCH_NEQ",
}
INVALID = "\0invalid:"  # the feature named INVALID + field: 1 where the field's value is invalid, else 0
ORDERED = {"lessThan", "lessOrEqual", "greaterThan", "greaterOrEqual"}
FLIP = {"true": "false", "false": "true"}

Outcome = Callable[[str, int], None]
Code = Callable[[str, str | None, Element], float]


class Nodes(Protocol):
    def new(self) -> int: ...

    def branch(self, node: int, feature: int, mode: str, value: float, true: int, false: int, missing: int) -> None: ...


class Predicates:
    """Writes predicates into trees; ``feature`` numbers a field, ``code`` turns a value into what it compares."""

    def __init__(self, feature: Callable[[str], int], code: Code, strings: Container[str],
                 invalid: Container[str]) -> None:  # fmt: skip
        self.feature, self.code, self.strings, self.invalid = feature, code, strings, invalid
        self.known: dict[str, bool] = {}  # on the path being written: field -> present (True) or missing (False)

    @contextmanager
    def _assume(self, name: str, present: bool) -> Iterator[None]:
        """While the outcomes below a field's check are written, the path knows whether the field is there."""
        saved = self.known
        self.known = {**saved, name: present}
        try:
            yield
        finally:
            self.known = saved

    def emit(self, tree: Nodes, pred: Element, at: int, outcome: Outcome) -> None:
        if pred.tag in ("True", "False"):
            outcome(pred.tag.lower(), at)
        elif pred.tag == "SimplePredicate":
            self._simple(tree, pred, at, outcome)
        elif pred.tag == "SimpleSetPredicate":
            self._set(tree, pred, at, outcome)
        elif pred.tag == "CompoundPredicate":
            parts = [c for c in pred.children if c.tag != "Extension"]
            op = pred.get("booleanOperator")
            if op not in ("and", "or", "xor", "surrogate") or len(parts) < 2:
                raise pred.refuse(f"booleanOperator={op} with {len(parts)} parts")
            self._compound(tree, op, parts, at, outcome, "none")
        else:
            raise pred.refuse()

    def _field(self, tree: Nodes, name: str, at: int, outcome: Outcome, if_missing: str,
               present: Callable[[int], None]) -> None:  # fmt: skip
        """Check ``name`` at ``at``: an invalid value (the field's :data:`INVALID` feature is 1) reaches an
        ``invalid`` outcome, a missing one the ``if_missing`` outcome, a valid one ``present(slot)``, which writes the
        test itself. A field the path has checked already gets no nodes: only the side the path can reach is written,
        and below the check the path knows the field's state."""
        if name in self.known:
            if self.known[name]:
                present(at)
            else:
                outcome(if_missing, at)
            return
        if name in self.invalid:
            bad, at_next = tree.new(), tree.new()
            tree.branch(at, self.feature(INVALID + name), "BRANCH_EQ", 1.0, bad, at_next, 0)
            outcome("invalid", bad)
            at = at_next
        missing, valid = tree.new(), tree.new()
        tree.branch(at, self.feature(name), "BRANCH_LT", -math.inf, missing, valid, 1)
        with self._assume(name, False):
            outcome(if_missing, missing)
        with self._assume(name, True):
            present(valid)

    def _simple(self, tree: Nodes, pred: Element, at: int, outcome: Outcome) -> None:
        name = pred.get("field") or ""
        feature, op = self.feature(name), pred.get("operator") or ""
        check = op in ("isMissing", "isNotMissing")
        if not check and (op not in MODES or (op in ORDERED and name in self.strings)):
            raise pred.refuse(f"operator={op}" + (" on a string field" if op in MODES else ""))
        if check:
            missing_is = "true" if op == "isMissing" else "false"
            self._field(tree, name, at, outcome, missing_is, lambda slot: outcome(FLIP[missing_is], slot))
            return

        def compare(slot: int) -> None:
            yes, no = tree.new(), tree.new()
            tree.branch(slot, feature, MODES[op], self.code(name, pred.get("value"), pred), yes, no, 0)
            outcome("true", yes)
            outcome("false", no)

        self._field(tree, name, at, outcome, "unknown", compare)

    def _set(self, tree: Nodes, pred: Element, at: int, outcome: Outcome) -> None:
        name = pred.get("field") or ""
        op = pred.get("booleanOperator")
        if op not in ("isIn", "isNotIn"):
            raise pred.refuse(f"booleanOperator={op}")
        members = [self.code(name, v, pred) for v in array(pred.require("Array"))]
        feature = self.feature(name)
        hit, miss = ("true", "false") if op == "isIn" else ("false", "true")

        def members_test(slot: int) -> None:
            for value in members:
                yes, no = tree.new(), tree.new()
                tree.branch(slot, feature, "BRANCH_EQ", value, yes, no, 0)
                outcome(hit, yes)
                slot = no
            outcome(miss, slot)

        self._field(tree, name, at, outcome, "unknown", members_test)

    def _compound(self, tree: Nodes, op: str, parts: list[Element], at: int, outcome: Outcome, so_far: str) -> None:
        """``so_far``: what the parts before this one settled (``none``, ``unknown``, or for xor the parity)."""
        last = len(parts) == 1

        def after(result: str, slot: int) -> None:
            if result == "invalid":  # the evaluation stops
                outcome(result, slot)
                return
            if op == "surrogate":
                if result != "unknown" or last:
                    outcome(result, slot)
                else:
                    self._compound(tree, op, parts[1:], slot, outcome, so_far)
                return
            if op in ("and", "or"):
                decisive = "false" if op == "and" else "true"
                if result == decisive:
                    outcome(result, slot)
                    return
                state = "unknown" if "unknown" in (result, so_far) else "none"
                if last:
                    outcome("unknown" if state == "unknown" else result, slot)
                else:
                    self._compound(tree, op, parts[1:], slot, outcome, state)
                return
            if result == "unknown":  # xor
                outcome("unknown", slot)
                return
            parity = (so_far == "true") != (result == "true")
            state = "true" if parity else "false"
            if last:
                outcome(state, slot)
            else:
                self._compound(tree, op, parts[1:], slot, outcome, state)

        self.emit(tree, parts[0], at, after)


def array(elem: Element) -> list[str]:
    """The members of a PMML <Array>: space-separated, double-quoted where they hold spaces (``\\"`` escapes)."""
    tokens = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', elem.text)
    values = [quoted.replace('\\"', '"') if quoted or not bare else bare for quoted, bare in tokens]
    n = elem.get("n")
    if n is not None and int(n) != len(values):
        raise elem.refuse(f"n={n} but {len(values)} values")
    return values
