"""Decision Events: names fixed by the state a decision was made from, so a restart cannot write one twice."""

from __future__ import annotations

from modelyard_operator.events import event_name, event_objects

MD = {
    "apiVersion": "modelyard.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "adder", "namespace": "ml", "uid": "u-1", "resourceVersion": "41"},
}


def test_the_same_decision_from_the_same_state_has_the_same_name() -> None:
    first = event_objects(MD, [("Normal", "RolloutAdvance", "to step 1")], now="2026-01-01T00:00:00Z", instance="a")
    again = event_objects(MD, [("Normal", "RolloutAdvance", "to step 1 (re-measured)")], now="2026-01-01T00:00:09Z",
                          instance="b")  # fmt: skip
    assert first[0]["metadata"]["name"] == again[0]["metadata"]["name"]
    assert first[0]["metadata"]["name"].startswith("adder.")


def test_a_new_state_a_new_index_or_reason_is_a_new_event() -> None:
    base = event_name(MD, 0, "RolloutAdvance")
    later = {**MD, "metadata": {**MD["metadata"], "resourceVersion": "42"}}
    other = {**MD, "metadata": {**MD["metadata"], "uid": "u-2"}}
    names = {base, event_name(later, 0, "RolloutAdvance"), event_name(MD, 1, "RolloutAdvance"),
             event_name(MD, 0, "RolloutPromote"), event_name(other, 0, "RolloutAdvance")}  # fmt: skip
    assert len(names) == 5


def test_event_fields_name_the_object_and_the_operator() -> None:
    (ev,) = event_objects(MD, [("Warning", "RolloutRollback", "x" * 5000)], now="2026-01-01T00:00:00Z", instance="op")
    assert ev["involvedObject"] == {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "name": "adder",
                                    "namespace": "ml", "uid": "u-1", "resourceVersion": "41"}  # fmt: skip
    assert ev["metadata"]["namespace"] == "ml"
    assert (ev["type"], ev["reason"], ev["count"]) == ("Warning", "RolloutRollback", 1)
    assert len(ev["message"]) == 1024
    assert ev["source"] == {"component": "modelyard-operator"}
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2026-01-01T00:00:00Z"


def test_a_long_object_name_still_makes_a_valid_event_name() -> None:
    long = {**MD, "metadata": {**MD["metadata"], "name": "a" * 253}}
    assert len(event_name(long, 0, "RolloutStart")) <= 253
