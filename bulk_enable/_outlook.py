"""How far a job is, from its report's rows alone (no request, no token): per account, the counters
done, failed for good (by cause) and left, the job's pace (counters answered a day, from the rows'
times) and the days left at that pace. Plain data: `_messages` says it in words."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from pathlib import Path

from ._model import FAILED_STATUSES, Command, Row, Status, left_to_send


@dataclass
class AccountOutlook:
    """One account of a report: what is done, what failed for good, what is left, and its pace."""

    done: int = 0
    failed: collections.Counter[str] = field(default_factory=collections.Counter)  # cause -> counters
    left: int = 0
    answered: collections.Counter[str] = field(default_factory=collections.Counter)  # UTC day -> counters

    @property
    def per_day(self) -> int | None:
        """The job's pace for this account: the counters answered on its busiest day so far (a day the
        quota cut short is a full day's worth; a first or last day may be partial). None: no day yet."""
        return max(self.answered.values()) if self.answered else None

    @property
    def days_left(self) -> int | None:
        """Days (quota resets) to finish at that pace: 0 when nothing is left; None when unknown."""
        if not self.left:
            return 0
        pace = self.per_day
        return math.ceil(self.left / pace) if pace else None


def outlook(rows: list[Row], command: Command) -> dict[str, AccountOutlook]:
    """{account: its outlook}, accounts in the order they first appear."""
    out: dict[str, AccountOutlook] = {}
    for r in rows:
        account = out.setdefault(r.account, AccountOutlook())
        if left_to_send(r, command):
            account.left += 1
        elif r.status in FAILED_STATUSES:
            account.failed[r.error_type or r.status.value] += 1
        else:
            account.done += 1
        if r.at and r.status is not Status.DEFERRED:
            account.answered[r.at[:10]] += 1
    return out


def days_left(accounts: dict[str, AccountOutlook]) -> int | None:
    """Days the whole job needs at its pace (accounts go side by side); None when one cannot tell."""
    days = [a.days_left for a in accounts.values()]
    return None if None in days else max((d for d in days if d is not None), default=0)


def json_outlook(report: Path, command: Command, accounts: dict[str, AccountOutlook]) -> dict[str, object]:
    """`bulk-enable report --json`: the outlook as one object."""
    left = sum(a.left for a in accounts.values())
    return {
        "report": str(report),
        "command": command.value,
        "counters": sum(a.done + a.failed.total() + a.left for a in accounts.values()),
        "complete": not left,
        "left": left,
        "days_left": days_left(accounts),
        "accounts": {
            name: {
                "done": a.done,
                "failed": dict(a.failed.most_common()),
                "left": a.left,
                "per_day": a.per_day,
                "days_left": a.days_left,
            }
            for name, a in accounts.items()
        },
    }
