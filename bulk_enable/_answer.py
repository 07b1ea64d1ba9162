"""One API answer, classified: the vocabulary between the Metrica client and the scheduler.

The client decides what an answer *means* (`Verdict`); the scheduler acts on the verdict alone and
never looks at error types, statuses or bodies.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    """What a bulk run should do with an answer."""

    DONE = "done"  # the change is made, or the read answered
    FAILED = "failed"  # this counter cannot be done: do not ask again
    DENIED = "denied"  # access denied to this counter; many in a row and no success: the token cannot write
    FOREIGN = "foreign"  # not the Metrica API's answer (a bare 404, a redirect): fails this counter
    RETRY = "retry"  # transient: ask again after a backoff; counts as an attempt
    SLOW_ADDRESS = "slow_address"  # per-address quota: the whole run slows down; not an attempt
    SLOW_LOGIN = "slow_login"  # parallel quota: fewer in flight for this login; not an attempt
    COUNTER_QUOTA = "counter_quota"  # this counter's daily quota: not before the reset
    ACCOUNT_QUOTA = "account_quota"  # the login's daily quota: nothing more for it before the reset
    ACCOUNT_REFUSED = "account_refused"  # the token is refused: nothing more for this login

    @property
    def transient(self) -> bool:
        """Worth asking again at once (after a wait)."""
        return self in _TRANSIENT

    @property
    def counts_as_attempt(self) -> bool:
        """Quota answers say "not so fast", not "this failed": they do not use up --max-attempts."""
        return self not in _QUOTA


_TRANSIENT = frozenset({Verdict.RETRY, Verdict.SLOW_ADDRESS, Verdict.SLOW_LOGIN})
_QUOTA = frozenset({Verdict.SLOW_ADDRESS, Verdict.SLOW_LOGIN, Verdict.ACCOUNT_QUOTA, Verdict.COUNTER_QUOTA})


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's result, already classified; its texts are safe (scrubbed, escaped, capped)."""

    verdict: Verdict
    http_status: int | None = None  # None: no HTTP answer (connection error, client timeout)
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header, already capped
