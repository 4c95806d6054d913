"""``kubectl modelyard`` / ``modelyard``: commands over ModelDeployments and ModelVersions.

status MD                 the deployment, its versions, pods, weights and last decision, as a tree
history MD                the versions it promoted, rolled back or aborted, newest first
approve|abort|promote|retry MD [--wait]
                          write a manual action (a fresh nonce) and, with --wait, wait for the decision
rollback MD --to VERSION  set spec.version (GitOps-managed objects: warns; --gitops prints the Git change)
compare md MD A B | compare mv A B
                          two versions side by side (validation figures; live figures with --prometheus)
versions MODEL            every ModelVersion of a model and where it serves
logs MD [--version V]     the model servers' logs, one prefix per pod
completion bash|zsh       shell completion
version | crds            the installed version | the CRDs as YAML
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from modelyard_operator import __version__
from modelyard_operator.api.crd import all_crds
from modelyard_operator.api.modeldeployment import ACTION_ANNOTATION
from modelyard_operator.kubectl import views
from modelyard_operator.kubectl.client import Cluster, PluginError, default_prometheus, prometheus_value
from modelyard_operator.names import LABEL_DEPLOYMENT, LABEL_VERSION
from modelyard_operator.rollout.promql import render_template, selector

ACTIONS = {"approve": "approve", "abort": "abort", "promote": "promoteFull", "retry": "retry"}
COMMANDS = ["status", "history", *ACTIONS, "rollback", "compare", "versions", "logs", "completion", "version", "crds"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl modelyard", description="Operate Modelyard ModelDeployments and ModelVersions.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )  # fmt: skip
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common.add_argument("--context", help="kubeconfig context")
    common.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    common.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text", help="output format")
    common.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="colour the output")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", parents=[common], help="a ModelDeployment as a tree").add_argument("md")
    sub.add_parser("history", parents=[common], help="rollout history").add_argument("md")
    for name, action in ACTIONS.items():
        a = sub.add_parser(name, parents=[common], help=f"request the {action} action")
        a.add_argument("md")
        a.add_argument("--wait", action="store_true", help="wait for the operator's decision")
        a.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits (default 120)")
    r = sub.add_parser("rollback", parents=[common], help="serve an earlier version (sets spec.version)")
    r.add_argument("md")
    r.add_argument("--to", required=True, metavar="VERSION", help="the version to serve")
    r.add_argument("--gitops", action="store_true", help="print the Git change instead of patching")
    r.add_argument("--force", action="store_true", help="patch even when Argo CD or Flux manages the object")
    r.add_argument("--wait", action="store_true", help="wait until the version serves and is Ready")
    r.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
    c = sub.add_parser("compare", parents=[common], help="two versions side by side")
    c.add_argument("kind", choices=["md", "mv"], help="md: versions of a ModelDeployment; mv: two ModelVersions")
    c.add_argument("names", nargs="+", metavar="NAME", help="md: MD A B (versions); mv: A B (ModelVersion names)")
    c.add_argument("--prometheus", default=default_prometheus(), help="Prometheus URL ($MODELYARD_PROMETHEUS_URL)")
    c.add_argument("--window", default="5m", help="PromQL range of the live figures (default 5m)")
    sub.add_parser("versions", parents=[common], help="ModelVersions of a model").add_argument("model")
    lg = sub.add_parser("logs", parents=[common], help="the model servers' logs")
    lg.add_argument("md")
    lg.add_argument("--version", dest="version_filter", help="only the pods of this version")
    lg.add_argument("--container", default="server", help="server (default) or loader")
    lg.add_argument("--tail", type=int, default=None, help="lines from the end of each log")
    lg.add_argument("-f", "--follow", action="store_true", help="follow (one pod only)")
    sub.add_parser("completion", help="shell completion script").add_argument("shell", choices=["bash", "zsh"])
    sub.add_parser("version", help="the installed version")
    sub.add_parser("crds", help="the CRDs as YAML")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = run(args)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def run(args: argparse.Namespace) -> int:
    if args.command == "version":
        print(f"modelyard {__version__}")
        return 0
    if args.command == "crds":
        sys.stdout.write(yaml.safe_dump_all(all_crds(), sort_keys=False))
        return 0
    if args.command == "completion":
        print(completion(args.shell))
        return 0
    cluster = Cluster(args.kubeconfig, args.context, args.namespace)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    out = Output(args.output, views.Style(colour))
    handler: Callable[[argparse.Namespace, Cluster, Output], int] = {
        "status": cmd_status, "history": cmd_history, "rollback": cmd_rollback, "compare": cmd_compare,
        "versions": cmd_versions, "logs": cmd_logs, **dict.fromkeys(ACTIONS, cmd_action),
    }[args.command]  # fmt: skip
    return handler(args, cluster, out)


class Output:
    def __init__(self, fmt: str, style: views.Style) -> None:
        self.fmt, self.style = fmt, style

    def data(self, data: Any, text: Callable[[], str]) -> None:
        print(views.dump(data, self.fmt) if self.fmt != "text" else text())

    def note(self, text: str) -> None:
        print(text, file=sys.stderr if self.fmt != "text" else sys.stdout)


def cmd_status(args: argparse.Namespace, cluster: Cluster, out: Output) -> int:
    md = cluster.md(args.md)
    model = md["spec"]["model"]
    view = views.status_view(md, cluster.mvs(model), cluster.pods({LABEL_DEPLOYMENT: args.md}))
    out.data(view.as_data(), lambda: views.render_status(view, out.style, views.now_utc()))
    return 0


def cmd_history(args: argparse.Namespace, cluster: Cluster, out: Output) -> int:
    md = cluster.md(args.md)
    rows = views.history_rows(md, views.now_utc())
    history = list(reversed((md.get("status") or {}).get("history") or []))
    out.data(history, lambda: views.table(rows, views.HISTORY_HEADER) if rows else "no rollout history yet")
    return 0


def cmd_versions(args: argparse.Namespace, cluster: Cluster, out: Output) -> int:
    mvs = cluster.mvs(args.model)
    mds = [md for md in cluster.mds() if (md.get("spec") or {}).get("model") == args.model]
    rows = views.versions_rows(mvs, mds, views.now_utc())
    data = [dict(zip(views.VERSIONS_HEADER, r, strict=True)) for r in rows]
    out.data(data, lambda: views.table(rows, views.VERSIONS_HEADER) if rows else f"no ModelVersions of {args.model}")
    return 0


def cmd_action(args: argparse.Namespace, cluster: Cluster, out: Output) -> int:
    action = ACTIONS[args.command]
    strategy = ((cluster.md(args.md).get("spec") or {}).get("rollout") or {}).get("strategy", "immediate")
    if strategy == "immediate":
        raise PluginError(
            f"modeldeployment/{args.md} rolls out with strategy immediate: actions apply to canary and blueGreen only"
        )
    nonce = f"{int(time.time())}-{secrets.token_hex(3)}"
    cluster.patch_md(args.md, {"metadata": {"annotations": {ACTION_ANNOTATION: f"{action}:{nonce}"}}})
    out.note(f"modeldeployment.modelyard.dev/{args.md}: {action} requested (nonce {nonce})")
    if not args.wait:
        return 0
    handled = wait_for(
        lambda: (cluster.md(args.md).get("status") or {}).get("lastHandledAction") or {},
        lambda a: a.get("nonce") == nonce, args.timeout, f"the operator to handle {action}:{nonce}",
    )  # fmt: skip
    md = cluster.md(args.md)
    decision = (md.get("status") or {}).get("lastDecision") or {}
    out.data(
        {"action": handled, "lastDecision": decision},
        lambda: "\n".join([f"{action}: {handled.get('result')}", *views.decision_text(decision)]),
    )
    return 0


def cmd_rollback(args: argparse.Namespace, cluster: Cluster, out: Output) -> int:
    md = cluster.md(args.md)
    version = args.to
    manager = views.gitops_manager(md)
    if args.gitops:
        print(views.gitops_change(md, version))
        return 0
    if manager and not args.force:
        out.note(
            f"warning: {manager} manages modeldeployment/{args.md}: a patch here is reverted at its next sync. Commit "
            f"this change instead (or pass --force):\n{views.gitops_change(md, version)}"
        )
        return 1
    model = md["spec"]["model"]
    known = {(mv.get("spec") or {}).get("version"): mv for mv in cluster.mvs(model)}
    if version not in known:
        raise PluginError(f"model {model} has no ModelVersion with version {version!r} (see: versions {model})")
    if (known[version].get("status") or {}).get("phase") == "Failed":
        raise PluginError(f"ModelVersion {known[version]['metadata']['name']} failed validation: it cannot serve")
    if manager:
        out.note(f"warning: {manager} manages modeldeployment/{args.md}; patching anyway (--force)")
    cluster.patch_md(args.md, {"spec": {"version": version}})
    out.note(f"modeldeployment.modelyard.dev/{args.md}: spec.version {md['spec'].get('version')} -> {version}")
    if args.wait:

        def serving(obj: dict[str, Any]) -> bool:
            st = obj.get("status") or {}
            return st.get("stableVersion") == version and views.condition(obj, "Ready").get("status") == "True"

        wait_for(lambda: cluster.md(args.md), serving, args.timeout, f"version {version} to serve")
        out.note(f"version {version} serves and modeldeployment/{args.md} is Ready")
    return 0


def cmd_compare(args: argparse.Namespace, cluster: Cluster, out: Output) -> int:
    if args.kind == "md":
        if len(args.names) != 3:
            raise PluginError("compare md takes MD A B (two versions of the ModelDeployment's model)")
        md = cluster.md(args.names[0])
        model = md["spec"]["model"]
        by_version = {(mv.get("spec") or {}).get("version"): mv for mv in cluster.mvs(model)}
        missing = [v for v in args.names[1:] if v not in by_version]
        if missing:
            raise PluginError(f"model {model} has no ModelVersion with version {', '.join(missing)}")
        a, b = by_version[args.names[1]], by_version[args.names[2]]
    else:
        if len(args.names) != 2:
            raise PluginError("compare mv takes A B (two ModelVersion names)")
        a, b = cluster.mv(args.names[0]), cluster.mv(args.names[1])
    live = live_figures(args, cluster.namespace, a, b) if args.prometheus else None
    rows = views.compare_rows(a, b, live)
    header = ["field", a["metadata"]["name"], b["metadata"]["name"], ""]
    data = {r[0]: {header[1]: r[1], header[2]: r[2]} for r in rows}
    out.data(data, lambda: views.table(rows, header))
    return 0


def live_figures(
    args: argparse.Namespace, namespace: str, a: dict[str, Any], b: dict[str, Any]
) -> dict[str, tuple[float | None, float | None]]:
    """Request rate, error rate, latency and shadow agreement of each version from Prometheus, over --window."""

    def one(mv: dict[str, Any], query: str) -> float | None:
        spec = mv["spec"]
        if query == "rps":
            sel = selector(spec["model"], spec["version"], namespace)
            promql = f"sum(rate(modelyard_inference_requests_total{sel}[{args.window}]))"
        else:
            promql = render_template(
                query, model=spec["model"], version=spec["version"], namespace=namespace, window=args.window
            )
        return prometheus_value(args.prometheus, promql)

    figures = {
        "requests/s": "rps",
        "error rate": "errorRate",
        "latency p95 (s)": "latencyP95",
        "latency p99 (s)": "latencyP99",
        "shadow agreement": "agreement",  # the share of copied requests a shadowing version agreed on
    }
    return {name: (one(a, q), one(b, q)) for name, q in figures.items()}


def cmd_logs(args: argparse.Namespace, cluster: Cluster, out: Output) -> int:
    labels = {LABEL_DEPLOYMENT: args.md}
    if args.version_filter:
        labels[LABEL_VERSION] = args.version_filter
    pods = sorted(cluster.pods(labels), key=lambda p: p["metadata"]["name"])
    if not pods:
        raise PluginError(
            f"no pods of modeldeployment/{args.md}" + (f" version {args.version_filter}" if args.version_filter else "")
        )
    if args.follow and len(pods) > 1:
        raise PluginError(f"--follow needs one pod; {len(pods)} match (narrow with --version)")
    for pod in pods:
        name = pod["metadata"]["name"]
        for line in cluster.logs(name, args.container, args.tail, args.follow):
            sys.stdout.write(f"[{name}] {line}" if line.endswith("\n") else f"[{name}] {line}\n")
    return 0


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise PluginError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.5)


FLAGS = (
    "-n --namespace --context --kubeconfig -o --output --color --wait --timeout --to --gitops --force --version "
    "--container --tail --follow --prometheus --window"
)


def completion(shell: str) -> str:
    """A completion script for bash (and zsh through bashcompinit): commands, flags and object names."""
    commands = " ".join(COMMANDS)
    script = f"""# kubectl modelyard / modelyard completion ({shell}): eval "$(modelyard completion {shell})"
_modelyard_names() {{
  kubectl get "$1" -o jsonpath='{{range .items[*]}}{{.metadata.name}} {{end}}' 2>/dev/null
}}
_modelyard() {{
  local cur prev cmd
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  cmd="${{COMP_WORDS[1]}}"
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "{commands}" -- "$cur")); return
  fi
  case "$prev" in
    -n|--namespace) COMPREPLY=($(compgen -W "$(_modelyard_names namespaces)" -- "$cur")); return;;
    -o|--output) COMPREPLY=($(compgen -W "text json yaml" -- "$cur")); return;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "{FLAGS}" -- "$cur")); return
  fi
  case "$cmd" in
    status|history|approve|abort|promote|retry|rollback|logs)
      COMPREPLY=($(compgen -W "$(_modelyard_names modeldeployments.modelyard.dev)" -- "$cur"));;
    compare) COMPREPLY=($(compgen -W "md mv $(_modelyard_names modelversions.modelyard.dev)" -- "$cur"));;
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur"));;
  esac
}}
complete -F _modelyard modelyard kubectl-modelyard"""
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script
