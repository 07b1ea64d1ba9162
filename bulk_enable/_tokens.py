"""Where a run's tokens come from, and the checks each one passes before anything is sent.

A token comes from an environment variable (`YANDEX_METRICA_TOKEN`, or an account's `token_env`) or
from a file (`--token-file`); never from the config itself. A token is a secret: no message here
ever carries it, only where it came from.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import UsageError
from ._model import TOKEN_ENV

if TYPE_CHECKING:
    from ._config import Config

log = logging.getLogger("bulk_enable")

TOKEN_LIMIT = 512  # characters; Yandex OAuth tokens are about 40 to 60
TOKEN_FILE_LIMIT = 4096  # bytes read from --token-file


def account_tokens(config: Config, token_file: Path | None) -> dict[str, str]:
    """Each account's token: from its token_env or token_file, or the run's default token; never from
    the YAML itself. Every account's problem is named at once."""
    found: dict[str, str] = {}
    problems: list[str] = []
    # A file shared by accounts is read once, and its permissions warned about once, however its
    # path is spelt (`token`, `./sub/../token`, a link to it).
    read: dict[str, str] = {}

    def read_file(path: Path) -> str:
        real = os.path.realpath(path)
        if real not in read:
            read[real] = file_token(path)
        return read[real]

    run_default = functools.cache(lambda: default_token(token_file))
    for account in config.accounts:
        if account.token_env is None and account.token_file is None:
            found[account.name] = run_default()
            continue
        if token_file is not None:
            raise UsageError(
                "--token-file applies to a single-account config; with `accounts:` each account's token "
                "comes from its token_env or token_file"
            )
        where = f"{config.path}: account `{account.name}`"
        try:
            if account.token_file is not None:
                found[account.name] = read_file(account.token_file)
            else:
                assert account.token_env is not None
                found[account.name] = _env_token(account.token_env)
        except UsageError as e:
            problems.append(f"{where}: {e}")
    if problems:
        more = [f"... and {len(problems) - 10} more accounts like these"] if len(problems) > 10 else []
        raise UsageError("\n".join(problems[:10] + more))
    return found


def _env_token(name: str) -> str:
    """An account's token from its token_env."""
    token = _bare(os.environ.get(name, ""))
    if token:
        return checked_token(token, f"${name}")
    if looks_like_token(name):
        raise UsageError(
            "its token_env looks like a token itself: put the token in an environment variable and give "
            "that variable's NAME as token_env"
        )
    raise UsageError(f"environment variable {name} (its token_env) is not set")


def looks_like_token(name: str) -> bool:
    """Environment variable names are short and upper-case; OAuth tokens are long and mixed."""
    return len(name) >= 20 and name != name.upper()


def default_token(token_file: Path | None) -> str:
    """The run's one token: from `token_file` when given, else from $YANDEX_METRICA_TOKEN."""
    if token_file is not None:
        return file_token(token_file)
    token = _bare(os.environ.get(TOKEN_ENV, ""))
    if not token:
        raise UsageError(f"no token: set {TOKEN_ENV} or pass --token-file PATH")
    return checked_token(token, f"${TOKEN_ENV}")


def file_token(token_file: Path) -> str:
    """The token saved in a file (--token-file, or an account's token_file): read with bounds, and a
    warning when others may read it."""
    try:
        mode = token_file.stat().st_mode
        if not stat.S_ISREG(mode):  # /dev/zero, a FIFO, a directory: never read without end
            raise UsageError(f"{token_file}: the token file is not a regular file")
        with open(token_file, "rb") as f:
            raw = f.read(TOKEN_FILE_LIMIT + 1)
    except OSError as e:
        raise UsageError(f"{token_file}: cannot read the token file ({e.strerror})") from None
    if len(raw) > TOKEN_FILE_LIMIT:
        raise UsageError(
            f"{token_file}: too long for a token file (over {TOKEN_FILE_LIMIT} bytes): save only the token "
            "in it"
        )
    try:
        token = _bare(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(
            f"{token_file}: the token file is not text (not UTF-8): save only the token in it"
        ) from None
    if not token:
        raise UsageError(f"{token_file}: the token file is empty")
    if mode & 0o077:
        log.warning(
            "%s: permissions %04o are too open for a token: `chmod 600 %s`",
            token_file,
            mode & 0o777,
            token_file,
        )
    return checked_token(token, str(token_file))


def checked_token(token: str, source: str) -> str:
    """`token` if it can be an OAuth token; else one line naming `source`, never the token."""
    if len(token) > TOKEN_LIMIT:
        raise UsageError(
            f"the token in {source} is {len(token)} characters long, longer than any OAuth token"
        )
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        raise UsageError(f"the token in {source} is in quotes: remove them (the quotes are not part of it)")
    if not all(33 <= ord(ch) <= 126 for ch in token):
        raise UsageError(
            f"the token in {source} has characters a token never has (spaces, control or non-ASCII "
            "characters): is it pasted whole, and only it?"
        )
    return token


def _bare(text: str) -> str:
    """The text without the spaces and the byte order mark around it: Notepad saves a BOM, and a
    variable set from such a file carries it too; a file and a variable are read alike."""
    return text.strip().removeprefix("\ufeff").strip()


@dataclass(frozen=True, slots=True)
class TokenSource:
    """Where one token comes from, as a config refers to it: never the token itself."""

    token: str = field(repr=False)
    env: str | None = None  # the environment variable that holds it
    file: Path | None = None  # or the file

    @property
    def reference(self) -> tuple[str, str]:
        """The account key and value that say where the token is: token_env or token_file."""
        return (
            ("token_file", str(self.file)) if self.file is not None else ("token_env", self.env or TOKEN_ENV)
        )

    @property
    def shown(self) -> str:
        """How a message names it: `$NAME` or the file's path."""
        return str(self.file) if self.file is not None else f"${self.env or TOKEN_ENV}"

    @property
    def own_name(self) -> str:
        """The account name of the token login's own counters when the listing does not name their
        owner: after where the token came from."""
        if self.file is not None:
            stem = self.file.name.split(".")[0]
        elif self.env in (None, TOKEN_ENV):
            return "own"
        else:
            stem = str(self.env).lower().replace("_", "-")
        return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "own"


def token_sources(envs: list[str] | None, files: list[Path] | None) -> list[TokenSource]:
    """`--token-env NAME` and `--token-file PATH` (each repeatable) in that order, else the default."""
    sources = []
    for name in envs or []:
        token = os.environ.get(name, "").strip()
        if not token and looks_like_token(name):  # never echoed: it may be the token itself
            raise UsageError("--token-env looks like a token itself: give the NAME of a variable holding it")
        if not token:
            raise UsageError(f"--token-env {name}: that environment variable is not set")
        sources.append(TokenSource(checked_token(token, f"${name}"), env=name))
    sources += [TokenSource(default_token(path), file=path) for path in files or []]
    return sources or [TokenSource(default_token(None), env=TOKEN_ENV)]
