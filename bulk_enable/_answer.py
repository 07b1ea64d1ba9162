"""One API answer, classified: the vocabulary between the Metrica client and the scheduler.

The client decides what an answer *means* (`Verdict`, and for a failure whom it blames: `Blame`);
the scheduler acts on those alone and never looks at error types, statuses or bodies. The one thing
it keys on besides them is an answer's `signature`, to tell "the same failure again" from another.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    """What a bulk run should do with an answer."""

    DONE = "done"  # the change is made, or the read answered
    FAILED = "failed"  # this counter cannot be done: do not ask again
    DENIED = "denied"  # access denied to this counter; many in a row and no success: the token cannot write
    FOREIGN = "foreign"  # not the Metrica API's answer (a web server's page, a redirect): fails this counter
    RETRY = "retry"  # transient: ask again after a backoff; counts as an attempt
    NO_ANSWER = "no_answer"  # no HTTP answer at all (connection error, client timeout): as RETRY
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
    def backs_off(self) -> bool:
        """Asked again after an exponential backoff (not paced by a quota's own wait)."""
        return self in _BACK_OFF

    @property
    def counts_as_attempt(self) -> bool:
        """Quota answers say "not so fast", not "this failed": they do not use up --max-attempts."""
        return self not in _QUOTA

    @property
    def failure(self) -> bool:
        """A call that ends on this answer failed (not a success, a quota or a refused token, which
        have stops of their own): alike failures with no success stop an account."""
        return self in _FAILURES


_BACK_OFF = frozenset({Verdict.RETRY, Verdict.NO_ANSWER})
_TRANSIENT = _BACK_OFF | {Verdict.SLOW_ADDRESS, Verdict.SLOW_LOGIN}
_QUOTA = frozenset({Verdict.SLOW_ADDRESS, Verdict.SLOW_LOGIN, Verdict.ACCOUNT_QUOTA, Verdict.COUNTER_QUOTA})
_FAILURES = _BACK_OFF | {Verdict.FAILED, Verdict.DENIED, Verdict.FOREIGN}


class Blame(enum.Enum):
    """What a failure is about, as far as the answer can tell."""

    NONE = "none"  # nothing in particular: a success, a transient fault, a quota, an unknown error
    COUNTER = "counter"  # this counter only, told by a method that works (no edit right, in Connect)
    EITHER = "either"  # this counter, or a method that is gone: the answer cannot tell (not_found)
    METHOD = "method"  # the method or the API root, not the counter (405, 501, a page, no `success`)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's result, already classified; its texts are safe (scrubbed, escaped, capped)."""

    verdict: Verdict
    http_status: int | None = None  # None with Verdict.NO_ANSWER: no HTTP answer came
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header, already capped
    blame: Blame = Blame.NONE
    content_type: str = ""  # the answer's media type, e.g. "text/html" ("" when none was given)

    def __post_init__(self) -> None:
        if self.verdict is Verdict.FOREIGN:  # not the API's answer: the API root or the method is wrong
            object.__setattr__(self, "blame", Blame.METHOD)

    @property
    def signature(self) -> tuple[str, str]:
        """What makes two failures "the same": the error type (the API's own, or `http_<status>`
        where the answer had none) and the media type."""
        return self.error_type, self.content_type

    @property
    def shows_the_method_works(self) -> bool:
        """A success, or a failure only a working method gives: the login may open up."""
        return self.verdict is Verdict.DONE or self.blame is Blame.COUNTER

    @property
    def refusal(self) -> bool:
        """The API's own word on this counter, which asking again would only repeat (a failure for
        good): a failure of a method that works, answered below 500. Not one that blames the method or
        the API root (a gone method, a page), and not a 5xx, whatever its body (a CDN's 520, a proxy's
        page too large to read): those are the server's, worth asking again another day."""
        return (
            self.verdict in (Verdict.FAILED, Verdict.DENIED)
            and self.blame is not Blame.METHOD
            and self.http_status is not None
            and self.http_status < 500
        )
