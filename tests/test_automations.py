"""The failure notices shipped as Prefect automation files are automations Prefect accepts."""

from __future__ import annotations

import yaml
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from tests.conftest import REPO


def load(name: str) -> AutomationCore:
    (spec,) = yaml.safe_load((REPO / "ops" / "automations" / name).read_text())["automations"]
    return AutomationCore.model_validate(spec)


def test_a_failed_or_crashed_ingest_is_noticed() -> None:
    automation = load("ingest-failed.yaml")
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.posture == Posture.Reactive
    assert trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert isinstance(automation.actions[0], DoNothing)


def test_two_hours_without_a_completed_ingest_is_noticed() -> None:
    trigger = load("ingest-missing.yaml").trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.posture == Posture.Proactive
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert trigger.within.total_seconds() == 7200
