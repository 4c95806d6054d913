"""``modelyard-build``: derive an optimized model from a parent model on local files.

    modelyard-build --parent model.onnx --out int8.onnx -t 'quantize: {mode: dynamic}' --gate 'top1Agreement: 0.99'
    modelyard-build --parent model.onnx --out derived.onnx --spec derive.yaml --report report.json
    modelyard-build --parent model.onnx --out int8.onnx -t 'quantize: {}' --push oci://registry.example/models/fraud:7
    modelyard-build --parent ranker.savedmodel/ --out ranker.onnx -t 'convert: onnx' --gate 'maxAbsDiff: 1e-5'

The spec (``--spec``, or ``-t`` once per transform and ``--gate``) has the shape of ``ModelVersion.spec.derivedFrom``
without ``version`` (docs/optimization.md). Files it names (``gate.samples``, ``calibration``) are local paths,
relative to the spec file's folder, and are checked against their ``digest`` when one is given. Progress goes to
stderr, the report (JSON) to ``--report`` or stdout. ``--push`` uploads a model that passed the gate to an OCI registry
as a one-file artifact (what ``oci://`` ModelVersions and the loader read) and adds ``pushed`` (its digest-pinned
reference) to the report. The operator's build Job for ``spec.derivedFrom`` runs exactly this, with
``--termination-log``.

Exit codes: 0 built and the gate passed; 1 the gate failed (the report says why, nothing is written to ``--out``);
2 usage or spec error; 3 a transform or the gate could not run; 4 the push failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from modelyard_runtime import logs
from modelyard_runtime.build import publish
from modelyard_runtime.build import spec as s
from modelyard_runtime.loader.ocipush import parse_target
from modelyard_runtime.modelfile import SAVED_MODEL_PB

EXIT_GATE, EXIT_USAGE, EXIT_BUILD, EXIT_PUSH = 1, 2, 3, 4
FORMATS = ("onnx", "pmml", "savedmodel")


class UsageError(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """YAML 1.2's floats: PyYAML (YAML 1.1) reads ``1e-6`` (no dot) as a string, which a threshold never is."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def _yaml(text: str, what: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        raise UsageError(f"{what}: not YAML ({e})") from None


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise UsageError(f"{what}: not JSON ({e})") from None


def _spec(args: argparse.Namespace) -> tuple[s.BuildSpec, Path]:
    if sum(map(bool, (args.spec, args.spec_json, args.transform or args.gate))) > 1:
        raise UsageError("give --spec, --spec-json, or -t/--gate: one of them")
    if args.spec_json:
        document, base = _json(args.spec_json, "--spec-json"), Path.cwd()
    elif args.spec:
        try:
            document = _yaml(Path(args.spec).read_text(), str(args.spec))
        except OSError as e:
            raise UsageError(f"--spec: {e.strerror}: {args.spec}") from None
        base = Path(args.spec).resolve().parent
    else:
        if not args.transform:
            raise UsageError("name the transforms: --spec FILE, or -t 'quantize: {mode: dynamic}' once per transform")
        document = {"transforms": [_yaml(t, f"-t {t!r}") for t in args.transform]}
        if args.gate:
            document["gate"] = _yaml(args.gate, "--gate")
        base = Path.cwd()
    document = document if isinstance(document, dict) else {"transforms": document}
    try:
        return s.parse_spec(document), base
    except s.SpecError as e:
        raise UsageError(str(e)) from None


def _resolver(base: Path) -> Callable[[s.Pinned, str], Path]:
    def resolve(pinned: s.Pinned, where: str) -> Path:
        uri = pinned.uri.removeprefix("file://")
        if "://" in uri:
            raise ValueError(f"{where}: modelyard-build reads local files; {pinned.uri} is fetched by a build Job")
        path = (base / uri).resolve()
        if path.is_dir():  # the folder a loader fetched the file into (the operator's build Job)
            inside = sorted(p for p in path.rglob("*") if p.is_file())
            if len(inside) != 1:
                raise ValueError(f"{where}: {path} holds {len(inside)} files; expected the one file")
            path = inside[0]
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ValueError(f"{where}: {e.strerror}: {path}") from None
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if pinned.digest and got != pinned.digest:
            raise ValueError(f"{where}: {path} has digest {got}, the spec pins {pinned.digest}")
        return path

    return resolve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelyard-build", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--parent", required=True, type=Path,
                   help="the parent model file (ONNX, or PMML with convert), or a folder that holds it "
                        "(a SavedModel's folder with convert)")  # fmt: skip
    p.add_argument("--format", choices=FORMATS, help="the parent's format (default: from its file name)")
    p.add_argument("--out", required=True, type=Path, help="where the derived ONNX model is written")
    p.add_argument("--spec", help="YAML or JSON file: {transforms: [...], gate: {...}}")
    p.add_argument("--spec-json", help="the same document inline (what the operator's build Job passes)")
    p.add_argument("-t", "--transform", action="append", default=[], help="one transform as YAML, repeatable, in order")
    p.add_argument("--gate", help="the gate as YAML, e.g. 'maxAbsDiff: 0.05'")
    p.add_argument("--report", type=Path, help="write the JSON report here (default: stdout)")
    p.add_argument("--latency-batch", type=int, default=32, help="rows per inference of the latency measurement")
    p.add_argument("--latency-runs", type=int, default=30, help="timed inferences per model; 0 skips the measurement")
    p.add_argument("--log-format", choices=logs.FORMATS, default=None, help="text (default) or json")
    publish.add_arguments(p)
    return p


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.parent.is_dir():
        if any(args.parent.rglob(SAVED_MODEL_PB)):
            return "savedmodel"
        raise UsageError(f"--format: say the format of the model in the folder {args.parent} (onnx or pmml)")
    suffix = args.parent.suffix.lower()
    if suffix in (".pmml", ".xml"):
        return "pmml"
    if suffix == ".onnx":
        return "onnx"
    raise UsageError(f"--format: cannot tell the format of {args.parent.name}; say --format onnx|pmml")


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename, so a crash never leaves half a model or report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def run(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure(logs.log_format(args.log_format))

    def fail(code: int, reason: str, message: str, report: dict[str, Any] | None = None) -> int:
        if reason == "GateFailed":
            for failure in report["gate"]["failures"] if report else []:
                print(f"modelyard-build: gate failed: {failure}", file=sys.stderr)
        else:
            print(f"modelyard-build: error: {message}", file=sys.stderr)
        publish.write_termination(args.termination_log, publish.summary(False, reason, message, report))
        return code

    try:
        build_spec, base = _spec(args)
        parent_format = _format(args)
        if args.latency_batch < 1 or args.latency_runs < 0:
            raise UsageError("--latency-batch must be at least 1 and --latency-runs at least 0")
        if args.push:
            parse_target(args.push)  # a malformed target is refused before the build runs
        args.parent = publish.parent_file(args.parent, parent_format)
        parent: bytes | Path = args.parent if parent_format == "savedmodel" else args.parent.read_bytes()
    except (UsageError, publish.PushError, ValueError) as e:
        parser.print_usage(sys.stderr)
        return fail(EXIT_USAGE, "InvalidSpec", str(e))
    except OSError as e:
        return fail(EXIT_USAGE, "InvalidSpec", f"--parent: {e.strerror}: {args.parent}")
    built = _build(args, parent, parent_format, build_spec, base)
    if isinstance(built, str):
        return fail(EXIT_BUILD, "BuildFailed", built)
    report = built.report
    if not built.passed:
        _report(args, report)
        return fail(EXIT_GATE, "GateFailed", "; ".join(report["gate"]["failures"]), report)
    _write(args.out, built.model)
    derived = report["derived"]
    log.info("wrote %s: %s, %d bytes", args.out, derived["digest"], derived["sizeBytes"])
    if args.push:
        try:
            pushed = publish.push(args.out, args.push, args, {"org.opencontainers.image.title": args.out.name})
        except publish.PushError as e:
            _report(args, report)
            return fail(EXIT_PUSH, "PushFailed", str(e), report)
        report["pushed"] = {"uri": pushed.uri, "digest": pushed.digest, "tag": pushed.tag}
        log.info("pushed %s", pushed.uri)
    _report(args, report)
    publish.write_termination(args.termination_log, publish.summary(True, "Built", "built, gated and stored", report))
    return 0


log = logging.getLogger("modelyard.build")


def _build(
    args: argparse.Namespace, parent: bytes | Path, parent_format: str, build_spec: s.BuildSpec, base: Path
) -> Any:
    """The build's result, or why it could not run (a string)."""
    from modelyard_runtime.build.pipeline import BuildError, build  # onnxruntime only once the arguments are good

    size = f"{len(parent)} bytes" if isinstance(parent, bytes) else "a folder"
    log.info("building from %s (%s, %s): %d transform(s)", args.parent, parent_format, size, len(build_spec.transforms))
    try:
        return build(parent, parent_format, build_spec, _resolver(base), latency_batch=args.latency_batch,
                     latency_runs=args.latency_runs)  # fmt: skip
    except (BuildError, ValueError) as e:
        return str(e)


def _report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    text = json.dumps(report, indent=2) + "\n"
    if args.report:
        _write(args.report, text.encode())
    else:
        sys.stdout.write(text)


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))
