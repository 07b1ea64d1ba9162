"""Load and validate a job's YAML: which counters, under which accounts.

Everything a user can get wrong is refused here, before any request is sent, with one line that
names the file, the line and the offending value (`ConfigError`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

DEFAULT_TOKEN_ENV = "YANDEX_METRICA_TOKEN"
DEFAULT_ACCOUNT = "default"

_INT_TAG = "tag:yaml.org,2002:int"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_PLAIN_ID = re.compile(r"[1-9][0-9]{0,18}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 100k IDs in ~1 s


class ConfigError(Exception):
    """A job file that cannot be run; the message is the one line shown to the user."""


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter to change, with the label and account it is reported under."""

    id: int
    label: str
    account: str


@dataclass(frozen=True, slots=True)
class Account:
    """A Metrica login: its token's environment variable and its counters, in input order."""

    name: str
    token_env: str | None  # None: the run's default token (env YANDEX_METRICA_TOKEN or --token-file)
    counters: tuple[Counter, ...]


@dataclass(frozen=True, slots=True)
class Config:
    """A validated job: every account with its counters; every counter ID appears once."""

    path: Path
    accounts: tuple[Account, ...]

    @property
    def counters(self) -> list[Counter]:
        """All counters in input order."""
        return [c for a in self.accounts for c in a.counters]


def load_config(path: Path) -> Config:
    """Read and validate the YAML at `path`; raise `ConfigError` with one clear line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate YAML `text` (read from `path`, which only names it in messages)."""
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}" if mark else "somewhere"
        raise ConfigError(f"{path}: {where}: not valid YAML ({e.problem or e.context})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    except _Problem as e:
        raise ConfigError(f"{path}: line {e.line + 1}: not valid YAML ({e.what})") from None
    return _Parser(path).config(root)


class _Node:
    """A YAML node as validation needs it: the tag, the value and the line, nothing else.

    PyYAML's own nodes carry two Mark objects each; for 100,000 IDs its tree peaks at ~53 MB against
    the list's 9 MB. These, built from the parser's events, keep the peak near the list itself.
    """

    __slots__ = ("line", "tag", "value")

    def __init__(self, tag: str, value: Any, line: int) -> None:
        self.tag, self.value, self.line = tag, value, line


class _Scalar(_Node):
    value: str


class _Seq(_Node):
    value: list[_Node]


class _Map(_Node):
    value: list[tuple[_Node, _Node]]


def _compose(text: str) -> _Node | None:
    """Compose the first YAML document of `text` into light nodes; a second document is an error."""
    resolver = yaml.resolver.Resolver()
    anchors: dict[str, _Node] = {}
    stack: list[_Node] = []
    pending_key: list[_Node | None] = []  # per open mapping: its key waiting for a value
    root: _Node | None = None
    documents = 0

    def attach(node: _Node, anchor: str | None) -> None:
        nonlocal root
        if anchor:
            anchors[anchor] = node
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent, _Seq):
            parent.value.append(node)
        elif pending_key[-1] is None:
            pending_key[-1] = node
        else:
            key = pending_key[-1]
            assert key is not None
            parent.value.append((key, node))
            pending_key[-1] = None

    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag in (None, "!"):
                tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
            attach(_Scalar(tag, event.value, _line(event)), event.anchor)
        elif isinstance(event, yaml.SequenceStartEvent):
            node: _Node = _Seq("seq", [], _line(event))
            attach(node, event.anchor)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, yaml.MappingStartEvent):
            node = _Map("map", [], _line(event))
            attach(node, event.anchor)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            stack.pop()
            pending_key.pop()
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise _Problem(_line(event), f"undefined alias {event.anchor!r}")
            attach(anchors[event.anchor], None)
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Problem(_line(event), "expected a single document, found another")
    return root


def _line(event: yaml.Event) -> int:
    return event.start_mark.line if event.start_mark is not None else 0


class _Problem(Exception):
    """A structural YAML error found while composing: (0-based line, what)."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line, self.what = line, what


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[int, int] = {}  # counter ID -> line of its first appearance
        self.used: set[int] = set()  # id() of the ID nodes read, to spot a YAML alias repeating one

    def fail(self, node: _Node | None, what: str) -> ConfigError:
        line = f"line {node.line + 1}: " if node is not None else ""
        return ConfigError(f"{self.path}: {line}{what}")

    def config(self, root: _Node | None) -> Config:
        if root is None or (isinstance(root, _Scalar) and root.tag == _NULL_TAG):
            raise self.fail(None, "the file is empty: expected a list of counter IDs")
        if isinstance(root, _Seq):
            accounts = [self.account_counters(DEFAULT_ACCOUNT, None, root)]
        elif isinstance(root, _Map):
            top = self.mapping(root, required=set(), allowed={"counters", "accounts"})
            if "counters" in top and "accounts" in top:
                raise self.fail(root, "use either `counters:` or `accounts:`, not both")
            if "counters" in top:
                accounts = [self.account_counters(DEFAULT_ACCOUNT, None, top["counters"])]
            elif "accounts" in top:
                accounts = self.accounts(top["accounts"])
            else:
                raise self.fail(root, "expected `counters:` or `accounts:` at the top")
        else:
            raise self.fail(root, f"expected a list of counter IDs, got {_shown(root)}")
        return Config(self.path, tuple(accounts))

    def mapping(self, node: _Map, required: set[str], allowed: set[str]) -> dict[str, _Node]:
        out: dict[str, _Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, _Scalar) else None
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.fail(key_node, f"unknown key {_shown(key_node)} (expected {expected})")
            if key in out:
                raise self.fail(key_node, f"key `{key}` given twice")
            out[key] = value
        for key in sorted(required - out.keys()):
            raise self.fail(node, f"missing key `{key}`")
        return out

    def accounts(self, node: _Node) -> list[Account]:
        if not isinstance(node, _Seq) or not node.value:
            raise self.fail(node, "`accounts:` must be a non-empty list of {name, token_env, counters}")
        accounts: list[Account] = []
        names: set[str] = set()
        for item in node.value:
            if not isinstance(item, _Map):
                raise self.fail(item, f"an account must be a mapping, got {_shown(item)}")
            fields = self.mapping(
                item,
                required={"name", "token_env", "counters"},
                allowed={"name", "token_env", "counters"},
            )
            name = self.text(fields["name"], "account name")
            if not name:
                raise self.fail(fields["name"], "account name is empty")
            if name in names:
                raise self.fail(fields["name"], f"account `{name}` given twice")
            names.add(name)
            env = self.text(fields["token_env"], "token_env")
            if not _ENV_NAME.fullmatch(env):
                raise self.fail(
                    fields["token_env"],
                    f"token_env {env!r} is not an environment variable name "
                    "(the token itself never goes in this file)",
                )
            accounts.append(self.account_counters(name, env, fields["counters"]))
        return accounts

    def account_counters(self, account: str, token_env: str | None, node: _Node) -> Account:
        if not isinstance(node, _Seq):
            raise self.fail(node, f"expected a list of counter IDs, got {_shown(node)}")
        if not node.value:
            raise self.fail(node, f"no counters listed for account `{account}`")
        counters: list[Counter] = []
        items, node.value = node.value[::-1], []  # consumed as read: nodes and counters never peak together
        while items:
            counter = self.counter(items.pop(), account)
            if counter is not None:
                counters.append(counter)
        return Account(account, token_env, tuple(counters))

    def counter(self, node: _Node, account: str) -> Counter | None:
        label = ""
        id_node = node
        if isinstance(node, _Map):
            fields = self.mapping(node, required={"id"}, allowed={"id", "label"})
            id_node = fields["id"]
            if "label" in fields:
                label = self.text(fields["label"], "label", allow_null=True)
        counter_id = self.counter_id(id_node)
        first = self.seen.setdefault(counter_id, id_node.line + 1)
        if first != id_node.line + 1 or id(id_node) in self.used:  # the same line twice: an alias
            log.warning(
                "%s: line %d: counter %d is listed again (first on line %d): it runs once",
                self.path,
                id_node.line + 1,
                counter_id,
                first,
            )
            return None
        self.used.add(id(id_node))
        return Counter(counter_id, label, account)

    def counter_id(self, node: _Node) -> int:
        if isinstance(node, _Scalar) and node.tag == _INT_TAG and _PLAIN_ID.fullmatch(node.value):
            return int(node.value)
        raise self.fail(node, f"counter ID must be a positive whole number, got {_shown(node)}")

    def text(self, node: _Node, what: str, allow_null: bool = False) -> str:
        if isinstance(node, _Scalar):
            if node.tag == _STR_TAG:
                return str(node.value).strip()
            if allow_null and node.tag == _NULL_TAG:
                return ""
        raise self.fail(node, f"{what} must be text, got {_shown(node)}")


def _shown(node: _Node) -> str:
    """How a bad value is named in a message: what the user typed, and what YAML made of it."""
    if isinstance(node, _Map):
        return "a mapping"
    if isinstance(node, _Seq):
        return "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    kind = {
        "str": "text",
        "int": "a number",
        "float": "a decimal number",
        "bool": "a yes/no value",
        "null": "an empty value",
        "timestamp": "a date",
    }.get(kind, kind)
    value = str(node.value)
    value = value if len(value) <= 40 else value[:37] + "..."
    return f"{value!r} ({kind})" if value else kind
