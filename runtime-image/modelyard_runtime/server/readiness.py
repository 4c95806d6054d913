"""Which versions a pod must serve, and which of them it cannot serve now (pure).

Readiness is what takes a pod into and out of its Service's endpoints, so it must be false whenever a version the
pod was started for cannot be served: an unloaded pod that stayed ready would answer 503 to its share of traffic.
The versions are given by ``--serve MODEL[:VERSION]`` (the operator renders them); without it, a static server
must keep serving every version it loaded at start.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

Required = tuple[str, str | None]  # (model, version); no version: any version of the model


def parse_serve(text: str) -> Required:
    """``fraud:42`` → ``("fraud", "42")``, ``fraud`` → ``("fraud", None)``; ValueError for an empty part."""
    model, sep, version = text.strip().partition(":")
    if not model or (sep and not version):
        raise ValueError(f"--serve {text!r}: expected MODEL or MODEL:VERSION")
    return model, version or None


def unserved(
    required: Iterable[Required],
    loaded: Mapping[str, Collection[str]],
    on_demand: Mapping[str, Collection[str]],
) -> list[str]:
    """The required versions that are neither loaded nor loadable on the first request, as ``model:version``.

    ``on_demand`` is what dynamic loading would load when asked (on disk, not unloaded through the admin API);
    static loading passes nothing, as it never loads on demand.
    """
    missing = []
    for model, version in required:
        for versions in (loaded.get(model, ()), on_demand.get(model, ())):
            if (version in versions) if version is not None else bool(versions):
                break
        else:
            missing.append(f"{model}:{version}" if version is not None else model)
    return missing
