"""Derived versions: a parent model, transforms applied in order (convert, quantize, float16, prune), a gate that
compares the derived model's outputs with the parent's, and a report of sizes, latency and the gate's numbers.

``modelyard-build`` (:mod:`modelyard_runtime.build.cli`) runs it on files;
docs/optimization.md describes each transform.
"""
