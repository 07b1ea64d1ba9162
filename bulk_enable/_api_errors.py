"""The API's error types: what the Metrica client makes of each, and what fixes a counter refused so.

With the client and the sandbox, the only place that spells them (tests/test_layout.py): the rest of
the house acts on the client's verdicts, and words a refusal's fix with `what_fixes`.
"""

from __future__ import annotations

from ._answer import Blame, Verdict

# error_type -> (verdict, blame), from docs/metrica-api.md
BY_ERROR_TYPE = {
    "backend_error": (Verdict.RETRY, Blame.NONE),
    "timeout": (Verdict.RETRY, Blame.NONE),
    "quota_requests_by_ip": (Verdict.SLOW_ADDRESS, Blame.NONE),
    "quota_parallel_requests": (Verdict.SLOW_LOGIN, Blame.NONE),
    "quota_requests_by_uid": (Verdict.ACCOUNT_QUOTA, Blame.NONE),
    "quota_delegate_requests": (Verdict.ACCOUNT_QUOTA, Blame.NONE),
    "quota_grants_requests": (Verdict.ACCOUNT_QUOTA, Blame.NONE),
    "quota_requests_by_counter_id": (Verdict.COUNTER_QUOTA, Blame.NONE),
    "invalid_token": (Verdict.ACCOUNT_REFUSED, Blame.NONE),
    "unauthorized": (Verdict.ACCOUNT_REFUSED, Blame.NONE),
    "access_denied": (Verdict.DENIED, Blame.COUNTER),
    "counter_in_connect": (Verdict.FAILED, Blame.COUNTER),
    # A method that is gone may well answer these too: the answer alone cannot say which.
    "not_found": (Verdict.FAILED, Blame.EITHER),
    "invalid_parameter": (Verdict.FAILED, Blame.EITHER),
}

# What changes the answer for a counter refused with each type; a rerun alone does not.
_FIXES = {  # {ulogin}: how the config names a client login
    "access_denied": "edit rights for the token's login, or {ulogin} for a client's counter",
    "counter_in_connect": "Metrica does not change a counter in Connect by API: ask who manages it there",
    "not_found": "the ID, or {ulogin} for a client's counter",
    "invalid_parameter": "the ID",
    "read_only": "edit rights for the token's login: it may only view the counter",  # a plan's status
}
_ANY_FIX = "what its message says"


def what_fixes(error_type: str, ulogin: str = "`ulogin:`") -> str:
    """What to change before a counter refused with `error_type` is sent again; `ulogin`: how the
    config at hand names a client login (a YAML key, a CSV column, --ulogin)."""
    return _FIXES.get(error_type, _ANY_FIX).format(ulogin=ulogin)
