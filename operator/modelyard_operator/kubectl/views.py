"""What the plugin prints, computed from plain objects (pure: no I/O, so every view is unit-tested on dicts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from modelyard_operator.names import LABEL_VERSION

Obj = dict[str, Any]

GREEN, YELLOW, RED, DIM, BOLD, RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
PHASE_COLOURS = {
    "Healthy": GREEN, "Ready": GREEN, "True": GREEN,
    "Progressing": YELLOW, "Paused": YELLOW, "Validating": YELLOW, "Pending": YELLOW, "Unknown": YELLOW,
    "Degraded": RED, "RolledBack": RED, "Failed": RED, "False": RED,
}  # fmt: skip


@dataclass
class Style:
    """Colour on a terminal, plain text in pipes and files."""

    colour: bool = False

    def phase(self, text: str) -> str:
        code = PHASE_COLOURS.get(text)
        return f"{code}{text}{RESET}" if self.colour and code else text

    def dim(self, text: str) -> str:
        return f"{DIM}{text}{RESET}" if self.colour else text

    def bold(self, text: str) -> str:
        return f"{BOLD}{text}{RESET}" if self.colour else text


def condition(obj: Obj, type_: str) -> Obj:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl's compact age: 45s, 12m, 3h, 5d."""
    if not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Columns padded like ``kubectl get``: three spaces between columns, upper-case header."""
    cells = [[h.upper() for h in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(strip_colour(r[i])) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        parts = [c + " " * (w - len(strip_colour(c))) for c, w in zip(r, widths, strict=True)]
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines)


def strip_colour(text: str) -> str:
    for code in (GREEN, YELLOW, RED, DIM, BOLD, RESET):
        text = text.replace(code, "")
    return text


def dump(data: Any, fmt: str) -> str:
    """``-o json`` / ``-o yaml``: stable key order, as kubectl prints."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


# ---------------------------------------------------------------------------------------------------------- status


@dataclass
class VersionLine:
    role: str  # stable / canary / other
    version: str
    weight: int | None
    pods_ready: int
    pods_total: int
    mv: Obj | None


@dataclass
class StatusView:
    name: str
    namespace: str
    model: str
    phase: str
    ready: Obj
    versions: list[VersionLine] = field(default_factory=list)
    step: Obj | None = None
    decision: Obj | None = None
    action: Obj | None = None
    endpoints: Obj = field(default_factory=dict)

    def as_data(self) -> Obj:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "model": self.model,
            "phase": self.phase,
            "ready": {k: self.ready.get(k) for k in ("status", "reason", "message")},
            "versions": [
                {
                    "role": v.role,
                    "version": v.version,
                    "weight": v.weight,
                    "pods": {"ready": v.pods_ready, "total": v.pods_total},
                    "modelVersion": (v.mv or {}).get("metadata", {}).get("name"),
                    "digest": (((v.mv or {}).get("status") or {}).get("artifact") or {}).get("digest"),
                    "validated": condition(v.mv or {}, "Validated").get("status"),
                }
                for v in self.versions
            ],
            "step": self.step,
            "lastDecision": self.decision,
            "lastHandledAction": self.action,
            "endpoints": self.endpoints,
        }


def pod_ready(pod: Obj) -> bool:
    return condition(pod, "Ready").get("status") == "True" and not (pod.get("metadata") or {}).get("deletionTimestamp")


def status_view(md: Obj, mvs: Sequence[Obj], pods: Sequence[Obj]) -> StatusView:
    """A ModelDeployment with the versions it serves, their pods and ModelVersions, and its last decision."""
    meta, spec, st = md.get("metadata") or {}, md.get("spec") or {}, md.get("status") or {}
    by_version = {(mv.get("spec") or {}).get("version"): mv for mv in mvs}
    weights = st.get("weights") or {}
    roles: list[tuple[str, str, int | None]] = []
    if st.get("stableVersion"):
        roles.append(("stable", str(st["stableVersion"]), weights.get("stable", 100)))
    if st.get("canaryVersion"):
        roles.append(("canary", str(st["canaryVersion"]), weights.get("canary", 0)))
    if spec.get("version") and all(v != str(spec["version"]) for _, v, _ in roles):
        roles.append(("desired", str(spec["version"]), None))
    seen = {v for _, v, _ in roles}
    for pod in pods:  # pods of versions the status no longer names (being drained)
        v = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_VERSION)
        if v and v not in seen:
            roles.append(("draining", v, None))
            seen.add(v)
    lines = []
    for role, version, weight in roles:
        mine = [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_VERSION) == version]
        ready = sum(1 for p in mine if pod_ready(p))
        lines.append(VersionLine(role, version, weight, ready, len(mine), by_version.get(version)))
    return StatusView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        model=spec.get("model", ""),
        phase=st.get("phase") or "Pending",
        ready=condition(md, "Ready"),
        versions=lines,
        step=st.get("step"),
        decision=st.get("lastDecision"),
        action=st.get("lastHandledAction"),
        endpoints=st.get("endpoints") or {},
    )


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def decision_text(decision: Obj) -> list[str]:
    """``Verdict: Reason`` and one line per metric with the numbers it was decided on."""
    head = f"{decision.get('verdict', '?')}: {decision.get('reason', '?')}"
    if decision.get("message"):
        head += f" - {decision['message']}"
    lines = [head]
    for m in decision.get("metrics") or []:
        lines.append(
            f"{m.get('name', '?')}: canary {_number(m.get('canary'))}, stable {_number(m.get('stable'))}, "
            f"n={_number(m.get('n'))} -> {m.get('verdict', '?')}" + (f" ({m['reason']})" if m.get("reason") else "")
        )
    return lines


def render_status(view: StatusView, style: Style, now: datetime) -> str:
    ready = view.ready
    ready_text = style.phase(ready.get("status", "Unknown"))
    if ready.get("reason"):
        ready_text += f" ({ready['reason']})"
    out = [
        f"{style.bold('ModelDeployment')} {view.namespace}/{view.name}   model {view.model}   "
        f"phase {style.phase(view.phase)}   ready {ready_text}"
    ]
    items: list[tuple[str, list[str]]] = []
    for v in view.versions:
        mv = v.mv or {}
        art = (mv.get("status") or {}).get("artifact") or {}
        weight = "-" if v.weight is None else f"{v.weight}%"
        mv_text = (
            f"ModelVersion {mv['metadata']['name']} {style.phase((mv.get('status') or {}).get('phase') or 'Pending')}"
            f" {art.get('shortDigest') or art.get('digest', '')[:19]} {art.get('size', '')}".rstrip()
            if mv
            else style.phase("Failed") + " no ModelVersion"
        )
        items.append(
            (f"{v.role:<8} {v.version:<10} weight {weight:<5} pods {v.pods_ready}/{v.pods_total} Ready   {mv_text}", [])
        )
    if view.step:
        s = view.step
        text = f"step {s.get('index', '?')}"
        if s.get("startedAt"):
            text += f"   started {age(s['startedAt'], now)} ago"
        if s.get("evidence") is not None:
            text += f"   evidence {s['evidence']} requests"
        items.append((text, []))
    if view.decision:
        lines = decision_text(view.decision)
        when = f"   {age(view.decision.get('at'), now)} ago" if view.decision.get("at") else ""
        items.append((f"last decision {lines[0]}{style.dim(when)}", lines[1:]))
    if view.action:
        a = view.action
        items.append((f"last action {a.get('type')}:{a.get('nonce')} -> {a.get('result')}", []))
    if view.endpoints:
        items.append((f"endpoints http {view.endpoints.get('http', '-')}   grpc {view.endpoints.get('grpc', '-')}", []))
    for i, (text, children) in enumerate(items):
        last = i == len(items) - 1
        out.append(("└─ " if last else "├─ ") + text)
        for j, child in enumerate(children):
            out.append(("   " if last else "│  ") + ("└─ " if j == len(children) - 1 else "├─ ") + child)
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ history, versions


def history_rows(md: Obj, now: datetime) -> list[list[str]]:
    """``status.history`` newest first, with the stable version on top."""
    rows = []
    for h in reversed((md.get("status") or {}).get("history") or []):
        rows.append([str(h.get("version", "")), str(h.get("outcome", "")), age(h.get("at"), now), str(h.get("at", ""))])
    return rows


HISTORY_HEADER = ["version", "outcome", "age", "at"]


def versions_rows(mvs: Sequence[Obj], mds: Sequence[Obj], now: datetime) -> list[list[str]]:
    """Every ModelVersion of a model, newest first, with where each one serves."""
    serving: dict[str, list[str]] = {}
    for md in mds:
        st = md.get("status") or {}
        for role in ("stable", "canary"):
            v = st.get(f"{role}Version")
            if v:
                serving.setdefault(str(v), []).append(f"{md['metadata']['name']}({role})")
    rows = []
    ordered = sorted(mvs, key=lambda mv: (mv.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    for mv in ordered:
        st, spec = mv.get("status") or {}, mv.get("spec") or {}
        art = st.get("artifact") or {}
        rows.append([
            mv["metadata"]["name"], str(spec.get("version", "")), st.get("phase") or "Pending",
            art.get("shortDigest") or (art.get("digest") or "")[:19], art.get("size") or "",
            ",".join(serving.get(str(spec.get("version")), [])) or "-",
            age(mv["metadata"].get("creationTimestamp"), now),
        ])  # fmt: skip
    return rows


VERSIONS_HEADER = ["name", "version", "phase", "digest", "size", "serving", "age"]


# ---------------------------------------------------------------------------------------------------------- compare


def signature_text(mv: Obj) -> str:
    sig = (mv.get("status") or {}).get("signature") or {}

    def tensors(items: Any) -> str:
        return ", ".join(f"{t.get('name')}:{t.get('datatype')}{t.get('shape')}" for t in items or [])

    if not sig:
        return "-"
    return f"in [{tensors(sig.get('inputs'))}] out [{tensors(sig.get('outputs'))}]"


def compare_rows(a: Obj, b: Obj, live: dict[str, tuple[float | None, float | None]] | None = None) -> list[list[str]]:
    """Two ModelVersions side by side: what validation found, then live figures from Prometheus when given."""

    def field_of(mv: Obj, name: str) -> str:
        st, spec = mv.get("status") or {}, mv.get("spec") or {}
        art = st.get("artifact") or {}
        value: Any = {
            "version": spec.get("version"),
            "phase": st.get("phase"),
            "format": spec.get("format"),
            "digest": art.get("digest"),
            "size": art.get("size") or art.get("sizeBytes"),
            "signed": "yes" if (spec.get("artifact") or {}).get("signature") else "no",
            "validated": condition(mv, "Validated").get("status"),
            "load seconds": st.get("loadSeconds"),
            "signature": signature_text(mv),
        }[name]
        return _number(value)

    names = ["version", "phase", "format", "digest", "size", "signed", "validated", "load seconds", "signature"]
    rows = []
    for name in names:
        left, right = field_of(a, name), field_of(b, name)
        rows.append([name, left, right, "" if left == right else "differs"])
    for name, (left_v, right_v) in (live or {}).items():
        rows.append([name, _number(left_v), _number(right_v), ""])
    return rows


# ------------------------------------------------------------------------------------------------------- gitops


def gitops_manager(obj: Obj) -> str | None:
    """Argo CD or Flux when either manages the object (their tracking labels, annotations or field managers)."""
    meta = obj.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    managers = {m.get("manager", "") for m in meta.get("managedFields") or []}
    if (
        "argocd.argoproj.io/tracking-id" in annotations
        or "argocd.argoproj.io/instance" in labels
        or (any(m.startswith("argocd") for m in managers))
    ):
        return "Argo CD"
    if any(k.startswith(("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")) for k in labels) or (
        managers & {"kustomize-controller", "helm-controller"}
    ):
        return "Flux"
    return None


def gitops_change(md: Obj, version: str) -> str:
    """The change to commit instead of patching a GitOps-managed object."""
    meta = md.get("metadata") or {}
    return (
        f"# in the manifest of ModelDeployment {meta.get('namespace')}/{meta.get('name')}:\n"
        f"spec:\n  version: {json.dumps(version)}"
    )


def now_utc() -> datetime:
    return datetime.now(UTC)
