"""How the sandbox behaves: its `Profile` (every setting, from a YAML profile or an option) and the
behaviours a setting can name. Kept apart from the server so `sandbox --help` can show the defaults
without loading aiohttp, and so the server module is only API behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ._errors import UserError

FIXED_BEHAVIOURS = (
    "access_denied",
    "not_found",
    "invalid_parameter",
    "counter_in_connect",
    "success_false",
    "already_enabled",
    "read_only",
)


FAULT_KINDS = ("backend_error", "timeout", "html_500", "drop", "slow")


# The answer to a `ulogin` the token's login does not represent: the documentation does not say.
FOREIGN_ULOGIN = {"access_denied": 403, "invalid_parameter": 400}


GUEST_PERMISSIONS = ("view", "edit", "analyst", "view_access_filter", "analyst_access_filter")


STRANGER = "someone-else"  # owner_login of a guest counter that no modelled login owns


# What the four threshold methods (missing from today's reference) might answer were they gone or
# changed: every write and join-threshold read gets it (docs/metrica-api.md).
METHOD_FAILURES = ("gone", "http_405", "html_501", "html_200", "empty_200", "invalid_parameter")


DEFAULT_TOKEN = "sandbox-token"


DEFAULT_COUNTERS = "1-1000,12345678,23456789,34567890"


class ProfileError(UserError):
    """A sandbox profile that cannot be used; one line for the user."""


def parse_ranges(spec: str | int | list[Any]) -> list[int]:
    """ "1-300,12345678" (or a list of such parts, or one ID) as a sorted list of IDs."""
    parts = spec if isinstance(spec, list) else str(spec).split(",")
    ids: set[int] = set()
    for part in parts:
        text = str(part).strip()
        if not text:
            continue
        first, sep, last = text.partition("-")
        try:
            low, high = int(first), int(last) if sep else int(first)
        except ValueError:
            raise ProfileError(f"counters: {text!r} is not an ID or a FIRST-LAST range") from None
        if high - low > 5_000_000:
            raise ProfileError(f"counters: {text!r} is too large a range for the sandbox")
        ids.update(range(low, high + 1))
    return sorted(ids)


@dataclass
class Profile:
    """How the sandbox behaves. Every field can come from a YAML profile or a command-line option."""

    tokens: dict[str, str] = field(default_factory=lambda: {DEFAULT_TOKEN: "agency"})  # token -> login
    dead_tokens: list[str] = field(default_factory=list)  # answered `invalid_token`
    write_denied_tokens: list[str] = field(default_factory=list)  # read fine, every write access_denied
    bad_token_status: int = 403  # a dead or unknown token: the docs say 403 in one place, 401 in another
    counters: list[int] = field(
        default_factory=lambda: parse_ranges(DEFAULT_COUNTERS)
    )  # editable by every login
    clients: dict[str, list[int]] = field(default_factory=dict)  # client login -> its counters (need ulogin)
    represents: dict[str, list[str]] = field(default_factory=dict)  # login -> client logins it may ulogin
    guests: dict[str, dict[int, str]] = field(default_factory=dict)  # login -> {guest counter: permission}
    foreign_ulogin: str = "access_denied"  # the answer to a ulogin not represented (docs: silent)
    fixed: dict[int, str] = field(default_factory=dict)  # counter -> one of FIXED_BEHAVIOURS
    enabled_days_ago: dict[int, int] = field(default_factory=dict)  # counter -> window enabled N days ago
    latency: float = 0.0  # seconds, each request
    jitter: float = 0.0  # +- seconds, uniform
    fault_rate: float = 0.0  # share of requests that get a transient fault
    faults: list[str] = field(default_factory=lambda: list(FAULT_KINDS))  # the mix to draw from
    slow_seconds: float = 5.0  # how long a "slow" fault takes: set it past the client's --timeout
    parallel_limit: int = 3  # per login
    ip_rps: int = 30  # per client address, sliding one-second window; 0: off
    daily_limit: int = 5000  # per login and method group (reads, writes); 0: off
    counter_daily_limit: int = 0  # writes per counter a day; 0: off
    quota_status: int = 429  # the Russian docs say 429, the English 420
    retry_after: float | None = None  # a Retry-After header on quota answers (no source shows one)
    page_cap: int = (
        1000  # counters per listing page at most, whatever per_page asks (no maximum is documented)
    )
    offline_options: bool = False  # add the undocumented offline_options object to listings
    threshold_format: str = "date"  # the join-threshold answer: "date" (YYYY-MM-DD) or "datetime"
    method_failure: str = ""  # one of METHOD_FAILURES for every write and join-threshold read; "": none
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: Path) -> Profile:
        """Read a profile; unknown keys and bad values are refused with one line."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ProfileError(f"{path}: cannot read the sandbox profile ({e})") from None
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: a sandbox profile is a mapping of settings")
        return cls().updated(data, str(path))

    def updated(self, data: dict[str, Any], source: str = "options") -> Profile:
        """A copy with `data` applied (YAML or CLI values), checked."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"{source}: unknown sandbox setting(s): {', '.join(unknown)}")
        merged = {f.name: getattr(self, f.name) for f in fields(self)}
        merged.update({k: v for k, v in data.items() if v is not None})
        try:
            merged["counters"] = parse_ranges(merged["counters"])
            merged["clients"] = {str(k): parse_ranges(v) for k, v in (merged["clients"] or {}).items()}
            merged["fixed"] = {int(k): str(v) for k, v in (merged["fixed"] or {}).items()}
            merged["enabled_days_ago"] = {
                int(k): int(v) for k, v in (merged["enabled_days_ago"] or {}).items()
            }
            merged["tokens"] = {str(k): str(v) for k, v in (merged["tokens"] or {}).items()}
            merged["represents"] = {
                str(k): [str(login) for login in (v if isinstance(v, list) else [v])]
                for k, v in (merged["represents"] or {}).items()
            }
            merged["guests"] = {
                str(k): {int(cid): str(p) for cid, p in (v or {}).items()}
                for k, v in (merged["guests"] or {}).items()
            }
            profile = Profile(**merged)
        except (TypeError, ValueError, AttributeError) as e:
            raise ProfileError(f"{source}: a sandbox setting has the wrong type ({e})") from None
        bad = {v for v in profile.fixed.values() if v not in FIXED_BEHAVIOURS}
        bad |= {f for f in profile.faults if f not in FAULT_KINDS}
        bad |= {p for given in profile.guests.values() for p in given.values() if p not in GUEST_PERMISSIONS}
        if bad:
            raise ProfileError(f"{source}: unknown behaviour(s): {', '.join(sorted(bad))}")
        if profile.quota_status not in (420, 429):
            raise ProfileError(f"{source}: quota_status must be 420 or 429")
        if profile.bad_token_status not in (401, 403):
            raise ProfileError(f"{source}: bad_token_status must be 401 or 403")
        if profile.threshold_format not in ("date", "datetime"):
            raise ProfileError(f"{source}: threshold_format must be date or datetime")
        if profile.foreign_ulogin not in FOREIGN_ULOGIN:
            raise ProfileError(f"{source}: foreign_ulogin must be {' or '.join(FOREIGN_ULOGIN)}")
        if profile.method_failure not in ("", *METHOD_FAILURES):
            raise ProfileError(f"{source}: method_failure must be one of {', '.join(METHOD_FAILURES)}")
        return profile
