"""PMML TreeModels (alone or as the segments of a MiningModel) as one ONNX-ML TreeEnsemble node (pure).

A PMML node's children are tried in order, the first whose predicate is true wins; here each child becomes a binary
node whose false branch tries the next child. PMML's missing-value strategies are path-exact: before a comparison on
a field, a "missing check" node (``BRANCH_LT`` against minus infinity, which only a missing value passes, through
``nodes_missing_value_tracks_true``) sends a missing value to a null leaf (``nullPrediction``), to the node's own
score (``lastPrediction``), to the ``defaultChild`` or, for ``none``, to the next sibling (the predicate is false).
A null leaf carries NaN, so the whole prediction is missing, as PMML's ``returnMissing`` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from .document import Element, PMMLError
from .graph import Graph
from .inputs import Context
from .predicates import INVALID, Predicates

_STRATEGIES = {"none", "nullPrediction", "lastPrediction", "defaultChild"}


@dataclass
class _Tree:
    """One tree's nodes in ONNX's parallel-array form."""

    ids: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    leaves: list[tuple[int, list[float]]] = field(default_factory=list)  # (node id, value per target)

    def new(self) -> int:
        node = len(self.ids)
        self.ids.append(node)
        self.modes.append("LEAF")
        self.values.append(0.0)
        for column in (self.features, self.true_ids, self.false_ids, self.missing_true):
            column.append(0)
        return node

    def branch(self, node: int, feature: int, mode: str, value: float, true: int, false: int, missing: int) -> None:
        self.features[node], self.modes[node], self.values[node] = feature, mode, value
        self.true_ids[node], self.false_ids[node], self.missing_true[node] = true, false, missing


class TreeCompiler:
    """Collects trees; :meth:`emit` writes them as one TreeEnsembleRegressor or TreeEnsembleClassifier."""

    def __init__(self, classes: list[str] | None, ctx: Context) -> None:
        self.classes = classes  # None: regression
        self.trees: list[_Tree] = []
        self.fields: list[str] = []
        self.predicates = Predicates(self._feature, ctx.code, ctx.codes, ctx.invalid_of)
        self.ctx = ctx

    def _feature(self, name: str) -> int:
        if name not in self.fields:
            self.fields.append(name)
        return self.fields.index(name)

    def _targets(self) -> int:
        return len(self.classes) if self.classes is not None else 1

    def add(self, model: Element, weight: float, *, vote: bool = False) -> None:
        """One TreeModel, its leaves scaled by ``weight``; ``vote``: a leaf counts for its score's class only."""
        strategy = model.get("missingValueStrategy", "none") or "none"
        if strategy not in _STRATEGIES:
            raise model.refuse(f"missingValueStrategy={strategy}")
        no_true = model.get("noTrueChildStrategy", "returnNullPrediction")
        if no_true not in ("returnNullPrediction", "returnLastPrediction"):
            raise model.refuse(f"noTrueChildStrategy={no_true}")
        if model.get("splitCharacteristic", "multiSplit") not in ("binarySplit", "multiSplit"):
            raise model.refuse("splitCharacteristic")
        root = model.require("Node")
        if root.find("True") is None:
            raise root.refuse("the root node's predicate must be <True/>")
        tree = _Tree()
        self._node(tree, root, tree.new(), strategy, no_true == "returnLastPrediction", weight, vote)
        self.trees.append(tree)

    def _leaf_value(self, node: Element, weight: float, vote: bool) -> list[float]:
        if self.classes is None:
            if node.get("score") is None:
                raise node.refuse("a regression node without a score")
            return [node.number("score") * weight]
        if vote:
            score = node.get("score")
            if score not in self.classes:
                raise node.refuse(f"score {score!r} is not a category of the target")
            return [weight if c == score else 0.0 for c in self.classes]
        dist = {d.get("value"): d for d in node.findall("ScoreDistribution")}
        if not dist:
            raise node.refuse("a classification node without ScoreDistribution")
        if all(d.get("probability") is not None for d in dist.values()):
            probs = {v: d.number("probability") for v, d in dist.items()}
        else:
            total = sum(d.number("recordCount") for d in dist.values())
            if total <= 0:
                raise node.refuse("ScoreDistribution record counts sum to zero")
            probs = {v: d.number("recordCount") / total for v, d in dist.items()}
        unknown = set(probs) - set(self.classes)
        if unknown:
            raise node.refuse(f"ScoreDistribution values {sorted(map(str, unknown))} are not categories of the target")
        return [probs.get(c, 0.0) * weight for c in self.classes]

    def _null(self) -> list[float]:
        return [math.nan] * self._targets()

    def _node(self, tree: _Tree, node: Element, at: int, strategy: str, last: bool, weight: float, vote: bool) -> None:
        """Fill slot ``at`` with ``node``: a leaf, or the chain over its children."""
        children = node.findall("Node")
        for child in node.children:
            if child.tag in ("Partition", "EmbeddedModel"):
                raise child.refuse()
        if not children:
            tree.leaves.append((at, self._leaf_value(node, weight, vote)))
            return
        own = self._leaf_value(node, weight, vote) if last else None  # returnLastPrediction: this node's score
        default = node.get("defaultChild")
        if strategy == "defaultChild" and default is None:
            raise node.refuse("missingValueStrategy=defaultChild on a node without defaultChild")
        self._chain(tree, node, children, 0, at, strategy, own, default, weight, vote)

    def _chain(self, tree: _Tree, parent: Element, children: list[Element], i: int, at: int, strategy: str,
               own: list[float] | None, default: str | None, weight: float, vote: bool) -> None:  # fmt: skip
        if i == len(children):  # no child's predicate held
            tree.leaves.append((at, own if own is not None else self._null()))
            return
        child = children[i]
        predicate = next((c for c in child.children if c.tag not in ("Node", "ScoreDistribution", "Extension")), None)
        if predicate is None:
            raise child.refuse("a node without a predicate")
        last = own is not None

        def outcome(result: str, slot: int) -> None:
            if result == "invalid":
                tree.leaves.append((slot, self._null()))
            elif result == "true":
                self._node(tree, child, slot, strategy, last, weight, vote)
            elif result == "false" or strategy == "none":  # none: a comparison with a missing value is false
                self._chain(tree, parent, children, i + 1, slot, strategy, own, default, weight, vote)
            elif strategy == "nullPrediction":
                tree.leaves.append((slot, self._null()))
            elif strategy == "lastPrediction":
                tree.leaves.append((slot, own or self._leaf_value(parent, weight, vote)))
            else:  # defaultChild
                target = next((c for c in children if c.get("id") == default), None)
                if target is None:
                    raise parent.refuse(f"defaultChild {default!r} names no child")
                self._node(tree, target, slot, strategy, last, weight, vote)

        self.predicates.emit(tree, predicate, at, outcome)

    def emit(self, graph: Graph, env: dict[str, str]) -> list[str]:
        """The ensemble's per-target sums as [N] double tensors (one for regression, one per class)."""
        missing = [f for f in self.fields if f not in env and not f.startswith(INVALID)]
        if missing:
            raise PMMLError(f"the trees test fields that are not inputs: {missing}")
        columns = [graph.column(self._input(graph, env, f)) for f in self.fields] or [
            graph.column(next(iter(env.values())))]  # fmt: skip
        features = graph.op("Concat", columns, axis=1) if len(columns) > 1 else columns[0]
        attrs: dict[str, Any] = {}
        keys = (
            "treeids",
            "nodeids",
            "featureids",
            "modes",
            "values",
            "truenodeids",
            "falsenodeids",
            "missing_value_tracks_true",
        )
        nodes: dict[str, list[Any]] = {k: [] for k in keys}
        targets: dict[str, list[object]] = {"treeids": [], "nodeids": [], "ids": [], "weights": []}
        for t, tree in enumerate(self.trees):
            nodes["treeids"] += [t] * len(tree.ids)
            nodes["nodeids"] += tree.ids
            nodes["featureids"] += tree.features
            nodes["modes"] += tree.modes
            nodes["values"] += tree.values
            nodes["truenodeids"] += tree.true_ids
            nodes["falsenodeids"] += tree.false_ids
            nodes["missing_value_tracks_true"] += tree.missing_true
            for node, values in tree.leaves:
                for k, v in enumerate(values):
                    targets["treeids"].append(t)
                    targets["nodeids"].append(node)
                    targets["ids"].append(k)
                    targets["weights"].append(v)
        for key, column in nodes.items():
            if key == "values":
                attrs["nodes_values_as_tensor"] = _tensor(column)
            else:
                attrs[f"nodes_{key}"] = column
        if self.classes is None:
            attrs.update(target_treeids=targets["treeids"], target_nodeids=targets["nodeids"],
                         target_ids=targets["ids"], target_weights_as_tensor=_tensor(targets["weights"]),
                         n_targets=1, aggregate_function="SUM", post_transform="NONE")  # fmt: skip
            out = graph.op("TreeEnsembleRegressor", [features], domain="ai.onnx.ml", **attrs)
            return [graph.flat(graph.double(out))]
        attrs.update(class_treeids=targets["treeids"], class_nodeids=targets["nodeids"], class_ids=targets["ids"],
                     class_weights_as_tensor=_tensor(targets["weights"]),
                     classlabels_int64s=list(range(len(self.classes))), post_transform="NONE")  # fmt: skip
        _, scores = graph.op("TreeEnsembleClassifier", [features], outputs=2, domain="ai.onnx.ml", **attrs)
        return graph.split_columns(graph.double(scores), len(self.classes))

    def _input(self, graph: Graph, env: dict[str, str], name: str) -> str:
        """A field's value, or for :data:`INVALID` + field, 1 where the field is invalid, else 0."""
        if name.startswith(INVALID):
            return graph.double(self.ctx.invalid_of[name[len(INVALID) :]])
        return env[name]


def _tensor(values: list[Any]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float64))
