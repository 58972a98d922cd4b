"""An operator's decision as the inbox file and the ``resolution_decisions`` row hold it (see
:mod:`store.resolution` for what each action does)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import polars as pl

Action = Literal["accept", "reject", "merge", "split"]
Outcome = Literal["pending", "applied", "refused"]
RESOLVER = "kasparro-resolver"
"""``decided_by`` of the merges resolution makes itself when later evidence clears the bar."""
CONTRADICTED = "market_contradicts"
"""``method`` of a review row that sends a link no market confirmed back to review: a market
now contradicts it (its candidate is the coin the asset is in)."""
OPERATOR = "operator"
"""The method of a link an operator's decision set."""

_UUID4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]


class Decision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One decision as the inbox file and the ``resolution_decisions`` row hold it."""

    decision_id: Annotated[str, msgspec.Meta(pattern=_UUID4)]
    action: Action
    coin_id: Id
    decided_by: Id
    decided_at: Annotated[datetime, msgspec.Meta(tz=True)]
    source: Id | None = None
    source_asset_id: Id | None = None
    other_coin_id: Id | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""

    def __post_init__(self) -> None:
        link = self.action in ("accept", "reject")
        wanted = {
            "source": link,
            "source_asset_id": link,
            "other_coin_id": self.action == "merge",
        }
        for name, needed in wanted.items():
            given = getattr(self, name) is not None
            if needed and not given:
                raise ValueError(f"{self.action} needs {name}")
            if given and not needed:
                raise ValueError(f"{self.action} takes no {name}")

    @property
    def file_name(self) -> str:
        """``<decided_at>-<decision_id>.json``: inbox files sort in the order they were taken."""
        return f"{self.decided_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{self.decision_id}.json"


def new_decision(action: Action, **fields: Any) -> Decision:
    """A decision taken now, with a fresh id."""
    return Decision(
        decision_id=str(uuid.uuid4()), action=action, decided_at=datetime.now(UTC), **fields
    )


DECISION_FILE = pl.Schema(
    {
        "decision_id": pl.String(),
        "action": pl.String(),
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "other_coin_id": pl.String(),
        "note": pl.String(),
        "decided_by": pl.String(),
        "decided_at": pl.Datetime("us", "UTC"),
    }
)
"""A decision's columns, as an inbox file and ``resolution_decisions`` hold them."""
