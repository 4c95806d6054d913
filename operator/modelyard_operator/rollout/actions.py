"""Manual actions (approve, abort, promoteFull, retry) from the spec field and the annotation (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from modelyard_operator.api.modeldeployment import ACTION_ANNOTATION, ActionType, RolloutAction

ACTION_TYPES: tuple[str, ...] = get_args(ActionType)


@dataclass(frozen=True)
class Action:
    type: str
    nonce: str
    source: str  # "spec" or "annotation"


class ActionError(ValueError):
    """The annotation does not name an action."""


def parse_annotation(value: str) -> Action:
    """``TYPE:NONCE`` (e.g. ``approve:7``) from the ``modelyard.dev/action`` annotation."""
    kind, sep, nonce = value.strip().partition(":")
    if not sep or not nonce:
        raise ActionError(f"{ACTION_ANNOTATION}: expected TYPE:NONCE (e.g. approve:1), got {value!r}")
    if kind not in ACTION_TYPES:
        raise ActionError(f"{ACTION_ANNOTATION}: unknown action {kind!r}; use one of {', '.join(ACTION_TYPES)}")
    if len(nonce) > 253:
        raise ActionError(f"{ACTION_ANNOTATION}: nonce longer than 253 characters")
    return Action(kind, nonce, "annotation")


def collect_actions(spec_action: RolloutAction | None, annotations: dict[str, str]) -> tuple[list[Action], list[str]]:
    """The actions present on the object (spec first) and the errors of unreadable annotations."""
    actions: list[Action] = []
    errors: list[str] = []
    if spec_action is not None:
        actions.append(Action(spec_action.type, spec_action.nonce, "spec"))
    raw = annotations.get(ACTION_ANNOTATION)
    if raw:
        try:
            actions.append(parse_annotation(raw))
        except ActionError as exc:
            errors.append(str(exc))
    return actions, errors
