"""``modelyard-loader``: fetch, verify and publish model artifacts (``fetch``), keep fetching versions on
request beside a dynamic-mode server (``sidecar``), validate a ModelVersion's artifact (``validate``),
and print a directory's tree digest (``digest``). Exit codes: see ``errors`` and docs/loader.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from modelyard_runtime import logs
from modelyard_runtime.loader import ssrf
from modelyard_runtime.loader.errors import EXIT_USAGE, LoaderError
from modelyard_runtime.loader.net import NetPolicy
from modelyard_runtime.loader.pipeline import FetchRequest, run_fetch
from modelyard_runtime.loader.signature import SignatureOptions
from modelyard_runtime.loader.sources import SourceOptions
from modelyard_runtime.loader.uri import redact

ENV_ALLOW_HOSTS = "MODELYARD_LOADER_ALLOW_HOSTS"
FORMATS = ("onnx", "tensorrt", "pmml", "savedmodel")  # spec.format; pmml is compiled to model.onnx before publishing


def _size(text: str) -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    suffix = t[-1] if t and t[-1] in units else ""
    try:
        return int(float(t[: len(t) - len(suffix)]) * units[suffix])
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 500M, 20G)") from None


def _add_common(cmd: argparse.ArgumentParser, *, uri_required: bool) -> None:
    cmd.add_argument(
        "--uri", required=uri_required, help="http(s)://, s3://, oci://, pvc://CLAIM/PATH, file:// or a path"
    )
    cmd.add_argument("--dest", required=uri_required, type=Path, help="directory the artifact is published at")
    cmd.add_argument("--digest", help="pinned digest sha256:<hex>; a mismatch fails closed")
    cmd.add_argument("--require-digest", action="store_true", help="refuse artifacts without --digest")
    cmd.add_argument("--cache", type=Path, help="content-addressed cache directory (used with --digest)")
    cmd.add_argument("--cache-verify", action="store_true", help="check a cache hit against the pinned digest")
    cmd.add_argument(
        "--allow-hosts",
        action="append",
        default=[],
        help=f"comma-separated hosts/IPs/CIDRs let through the SSRF guard, repeatable (also ${ENV_ALLOW_HOSTS})",
    )
    cmd.add_argument("--allow-file", action="store_true", help="allow file:// URIs and local paths")
    cmd.add_argument("--pvc-root", default=os.environ.get("MODELYARD_LOADER_PVC_ROOT", "/mnt/pvc"))
    cmd.add_argument("--max-bytes", type=_size, default=_size(os.environ.get("MODELYARD_LOADER_MAX_BYTES", "64G")))
    cmd.add_argument("--parallel", type=int, default=int(os.environ.get("MODELYARD_LOADER_PARALLEL", "4")))
    cmd.add_argument("--timeout", type=float, default=30.0, help="seconds per connection attempt and read")
    cmd.add_argument("--ca-file", help="PEM bundle of extra CAs for https (default: $MODELYARD_LOADER_CA_FILE)")
    cmd.add_argument("--no-progress", action="store_true")
    cmd.add_argument(
        "--credentials-dir",
        "--s3-credentials-dir",
        dest="credentials_dir",
        help="mounted Secret: accessKeyId/secretAccessKey (S3); token or username/password (HTTP); username/password "
        "or .dockerconfigjson (OCI); 'host' names the only hosts its credentials go to",
    )
    # S3: a flag wins over the credentials Secret's key, which wins over the environment (docs/loader.md, "S3")
    cmd.add_argument("--s3-endpoint", help="http(s)://HOST[:PORT] (default: $AWS_ENDPOINT_URL_S3, AWS's)")
    cmd.add_argument("--s3-region", help="signing region (default: $AWS_REGION, us-east-1)")
    cmd.add_argument("--s3-addressing-style", choices=["path", "virtual"], help="default: virtual on AWS, else path")
    cmd.add_argument("--oci-username")
    cmd.add_argument("--oci-password-file")
    cmd.add_argument("--docker-config", help="docker config.json with registry auths (default $DOCKER_CONFIG)")
    cmd.add_argument("--oci-plain-http", action="store_true", help="talk plain http to the registry (tests only)")
    cmd.add_argument("--signature", help="URI of an OpenSSF model-signing bundle")
    cmd.add_argument("--public-key", help="PEM public key the signature must verify with")
    cmd.add_argument("--certificate-chain", action="append", default=[], help="PEM CA chain (repeatable)")
    cmd.add_argument("--sigstore-identity")
    cmd.add_argument("--sigstore-issuer")
    cmd.add_argument("--trust-root", help="sigstore trust configuration JSON (offline)")
    cmd.add_argument(
        "--format",
        choices=FORMATS,
        default="onnx",
        help="spec.format: what the artifact holds; pmml is compiled to model.onnx before publishing",
    )
    cmd.add_argument(
        "--compiled-digest", help="pmml: the compiled model's digest the validation recorded; a mismatch fails closed"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelyard-loader", description="Fetch, verify and publish model artifacts")
    sub = p.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch one artifact to --dest and exit")
    _add_common(fetch, uri_required=True)
    side = sub.add_parser("sidecar", help="serve POST /fetch on 127.0.0.1 and fetch versions on request")
    _add_common(side, uri_required=False)
    for cmd in (fetch, side):
        cmd.add_argument(
            "--termination-log",
            help="on failure, write {reason, message} here (a pod's /dev/termination-log: the container's "
            "termination message)",
        )
    side.add_argument("--repository", type=Path, default=Path("/models"), help="the server's model repository")
    side.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT of the local API (loopback only)")
    side.add_argument("--server-admin", help="http://127.0.0.1:PORT: the server's admin API, to load what is fetched")
    side.add_argument("--server-admin-token-file", type=Path, help="the bearer token of the server's admin API")
    side.add_argument(
        "--versions-file",
        type=Path,
        help='JSON {"versions": [POST /fetch bodies, each with an optional "config"]}: versions to hold beside '
        "--uri's, followed as it changes (a mounted ConfigMap key)",
    )
    val = sub.add_parser("validate", help="fetch, verify, inspect and load once; write a JSON result")
    _add_common(val, uri_required=True)
    val.add_argument("--termination-log", default="/dev/termination-log")
    for cmd in (fetch, side, val):
        cmd.add_argument(
            "--log-format",
            choices=["text", "json"],
            default=None,
            help="text, or one JSON object per line (default: $MODELYARD_LOG_FORMAT, else text)",
        )
    dig = sub.add_parser("digest", help="print the digest of a file or the tree digest of a directory")
    dig.add_argument("path", type=Path)
    health = sub.add_parser("health", help="exit 0 when the sidecar at --listen answers (a startup probe)")
    health.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT of the sidecar's API")
    health.add_argument("--timeout", type=float, default=2.0)
    return p


def request_from_args(args: argparse.Namespace, *, uri: str | None = None, dest: Path | None = None,
                      digest: str | None = None) -> FetchRequest:  # fmt: skip
    allow = [h for h in ",".join([*args.allow_hosts, os.environ.get(ENV_ALLOW_HOSTS, "")]).split(",") if h.strip()]
    policy = NetPolicy(allow=ssrf.Allowlist.parse(allow), timeout=args.timeout, ca_file=args.ca_file)
    source = SourceOptions(
        policy=policy,
        max_bytes=args.max_bytes,
        parallel=max(1, args.parallel),
        progress=not args.no_progress,
        credentials_dir=args.credentials_dir,
        s3_endpoint=args.s3_endpoint,
        s3_region=args.s3_region,
        s3_addressing_style=args.s3_addressing_style,
        oci_username=args.oci_username,
        oci_password_file=args.oci_password_file,
        docker_config=args.docker_config,
        oci_plain_http=args.oci_plain_http,
    )
    sig = SignatureOptions(
        uri=args.signature,
        public_key=args.public_key,
        certificate_chain=list(args.certificate_chain),
        sigstore_identity=args.sigstore_identity,
        sigstore_issuer=args.sigstore_issuer,
        trust_root=args.trust_root,
    )
    return FetchRequest(
        uri=uri if uri is not None else args.uri,
        dest=dest if dest is not None else args.dest,
        digest=digest if digest is not None else args.digest,
        cache=args.cache,
        cache_verify=args.cache_verify,
        require_digest=args.require_digest,
        allow_file=args.allow_file,
        pvc_root=args.pvc_root,
        model_format=args.format,
        compiled_digest=args.compiled_digest,
        signature=sig,
        source=source,
    )


def _digest_command(path: Path) -> int:
    from modelyard_runtime.loader.tree import hash_file, tree_digest

    if path.is_dir():
        print(tree_digest(path, label=str(path))[0])
    else:
        print("sha256:" + hash_file(path))
    return 0


def _write_termination_log(path: str, error: LoaderError) -> None:
    """The failure's reason and message as one JSON object, what Kubernetes shows as the termination message (at
    most 4096 bytes: the message is cut to fit)."""
    text = json.dumps({"reason": error.reason, "message": str(error)[:3500], "exitCode": error.exit_code})
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        sys.stderr.write(f"modelyard-loader: cannot write the termination log {path}: {e.strerror}\n")


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) and EXIT_USAGE
    if getattr(args, "log_format", None):  # logs.line reads it (a flag wins over the environment)
        os.environ[logs.ENV] = args.log_format
    try:
        if args.command == "digest":
            return _digest_command(args.path)
        if args.command == "health":
            from modelyard_runtime.loader.sidecar import probe

            return probe(args.listen, args.timeout)
        if args.command == "validate":
            from modelyard_runtime.loader.validate import run_validate

            return run_validate(request_from_args(args), args.termination_log, args.format)
        if args.command == "sidecar":
            from modelyard_runtime.loader.sidecar import run_sidecar

            return run_sidecar(args)
        result = run_fetch(request_from_args(args))
    except LoaderError as e:
        logs.line("modelyard-loader", f"error ({e.reason}): {e}", level="ERROR", reason=e.reason)
        if getattr(args, "termination_log", None):
            _write_termination_log(args.termination_log, e)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result.as_dict()))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = run(argv)
    except Exception as e:
        logs.line("modelyard-loader", f"internal error: {type(e).__name__}: {redact(str(e))}", level="ERROR")
        code = 1
    sys.exit(code)
