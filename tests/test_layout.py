"""The seams of the house, checked: what a module may know."""

from __future__ import annotations

import re
from pathlib import Path

from bulk_enable import _api_errors, _metrica
from bulk_enable._model import Status
from bulk_enable._options import OPTIONS

PACKAGE = Path(_metrica.__file__).parent
SPEAK_THE_API = {"_api_errors.py", "_metrica.py", "_sandbox.py", "_sandbox_profile.py", "_sandbox_command.py"}


def api_error_types() -> set[str]:
    """The error types the client maps, less words the house uses for its own things: an option's
    Policy field (`timeout`) and a report status (`not_found`, a plan's counter the token cannot see)."""
    own_words = {o.policy for o in OPTIONS if o.policy} | {s.value for s in Status}
    return set(_api_errors.BY_ERROR_TYPE) - own_words


def test_api_error_types_are_spelled_only_where_the_api_is_spoken() -> None:
    """Only the Metrica client (with its table, `_api_errors`) and the sandbox know the API's error
    types; every other module acts on
    what the client made of an answer (Verdict, Blame, a row's `final`)."""
    types = api_error_types()
    assert "backend_error" in types and "access_denied" in types
    words = "|".join(map(re.escape, sorted(types)))
    literal = re.compile(rf"""(["'])({words})\1""")
    found = {
        path.name: sorted({m.group(2) for m in literal.finditer(path.read_text(encoding="utf-8"))})
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name not in SPEAK_THE_API
    }
    assert {name: spelt for name, spelt in found.items() if spelt} == {}
