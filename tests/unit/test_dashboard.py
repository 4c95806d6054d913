"""The Grafana dashboard's structure (hack/dashboard.py): what Grafana needs to import it and draw every panel."""

from __future__ import annotations

import json
import re

from dashboard import GRAFANA_VERSION, SCHEMA_VERSION, dashboard

from ..conftest import REPO


def test_generated_copies_are_the_generators_output() -> None:
    want = json.dumps(dashboard(), indent=2) + "\n"
    for path in (
        REPO / "dashboards" / "modelyard.json",
        REPO / "charts" / "modelyard" / "dashboards" / "modelyard.json",
    ):
        assert path.read_text() == want, f"{path}: run make generate"


def test_declares_its_grafana_and_uses_only_known_variables() -> None:
    d = dashboard()
    assert {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION} in d["__requires"]
    assert d["schemaVersion"] == SCHEMA_VERSION
    assert re.fullmatch(r"[a-z0-9-]{1,40}", d["uid"])
    variables = {v["name"] for v in d["templating"]["list"]}
    assert variables == {"datasource", "namespace", "model"}
    builtin = {"__rate_interval", "__interval", "__all"}
    for panel in d["panels"]:
        for target in panel.get("targets", []):
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= variables | builtin, (panel["title"], used)


def test_panels_have_unique_ids_fit_the_grid_and_do_not_overlap() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine


def test_every_panel_queries_prometheus_with_unique_ref_ids() -> None:
    graphs = [p for p in dashboard()["panels"] if p["type"] == "timeseries"]
    assert len(graphs) == 11
    for p in graphs:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs
        assert len(refs) == len(set(refs))
        assert all(t["expr"].count("(") == t["expr"].count(")") for t in p["targets"]), p["title"]
    titles = " ".join(p["title"] for p in graphs)
    for needed in ("Requests", "Server errors", "latency", "Queue vs compute", "batch size", "in flight", "memory",
                   "load time", "Canary weight", "decisions"):  # fmt: skip
        assert needed.lower() in titles.lower(), needed
