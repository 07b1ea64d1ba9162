"""A job as YAML (three forms), composed node by node so every problem names its line, with the
aliases, tags and sizes that make YAML bombs refused as they are read (see `_config` for the limits)."""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import _config
from ._config import (
    CSV_HEADER,
    DEFAULT_ACCOUNT,
    DIGITS,
    MANY_IDS,
    Account,
    Config,
    ConfigError,
    Ids,
    id_from_text,
    no_surrogates,
    too_many,
)
from ._model import ENV_NAME, LOGIN_PATTERN, Counter
from ._tokens import looks_like_token
from ._untrusted import PLAIN

_INT_TAG = "tag:yaml.org,2002:int"


_STR_TAG = "tag:yaml.org,2002:str"


_NULL_TAG = "tag:yaml.org,2002:null"


_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
)


def parse_config(text: str, path: Path) -> Config:
    """Validate YAML `text` (read from `path`, which only names it in messages)."""
    import yaml  # a YAML job needs it; the rest of the CLI starts faster without it

    first_line = text.lstrip("\n").split("\n", 1)[0]
    if CSV_HEADER.match(first_line):
        raise ConfigError([f"{path}: line 1: this looks like CSV: give the file a .csv extension"])
    try:
        try:
            root = _compose(text)
        except yaml.MarkedYAMLError as e:
            if "Unicode character escape" not in str(e.problem):
                raise
            # libyaml refuses an escaped lone surrogate ("\\ud800"); PyYAML reads it (U+FFFD in a label).
            root = _compose(text, yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        problem = " ".join(str(e.problem or e.context or "unreadable").split())
        if mark is not None and _tab_at(text, mark.line, mark.column, problem):
            problem = "a tab character: YAML is indented with spaces, never tabs"
        raise ConfigError([f"{path}: {where}not valid YAML ({problem})"]) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        code = ord(e.character) if isinstance(e.character, str) else int(e.character)  # libyaml: an int
        what = f"character {code:#06x}"
        raise ConfigError(
            [f"{path}: line {line}: not valid YAML ({what} is not allowed: remove it)"]
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid YAML ({' '.join(str(e).split())})"]) from None
    except _Problem as e:
        raise ConfigError([f"{path}: line {e.line + 1}: {e.what}"]) from None
    return _Parser(path).config(root)


def _tab_at(text: str, line: int, column: int, problem: str) -> bool:
    """The YAML error is a tab: libyaml's message often does not say so, the line does."""
    if "tab" in problem or "\\t" in problem or "\t" in problem:
        return True
    lines = text.split("\n")
    here = lines[line] if 0 <= line < len(lines) else ""
    indent = re.match(r"[ \t-]*", here)
    return here[column : column + 1] == "\t" or (indent is not None and "\t" in indent.group())


class _Node:
    """A YAML node as validation needs it: the tag, the value, the line, whether it was quoted and
    the tag it was given, if any, as written (`!!str`).

    PyYAML's own nodes carry two Mark objects each; for 100,000 IDs its tree peaks at ~53 MB against
    the list's 9 MB. These, built from the parser's events, keep the peak near the list itself.
    """

    __slots__ = ("given_tag", "line", "quoted", "tag", "value")

    def __init__(
        self, tag: str, value: Any, line: int, quoted: bool = False, given_tag: str | None = None
    ) -> None:
        self.tag, self.value, self.line, self.quoted, self.given_tag = tag, value, line, quoted, given_tag


class _Scalar(_Node):
    value: str


class _Seq(_Node):
    value: list[_Node]


class _Map(_Node):
    value: list[tuple[_Node, _Node]]


def _compose(text: str, loader: Any = None) -> _Node | None:
    """Compose the first YAML document of `text` into light nodes; a second document is an error.

    An alias may repeat a scalar (an ID), never a list or a mapping: that is how YAML bombs grow.
    More than _config.MAX_COUNTERS items in the lists of counters stop the reading, so memory stays bounded.
    """
    import yaml

    if loader is None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 100k IDs in ~1 s
    resolver = yaml.resolver.Resolver()
    anchors: dict[str, _Node] = {}
    stack: list[_Node] = []
    pending_key: list[_Node | None] = []  # per open mapping: its key waiting for a value
    root: _Node | None = None
    documents = 0
    accounts: _Node | None = None  # the list of accounts: its items are not counters
    items = 0  # in all other lists

    def attach(node: _Node, anchor: str | None) -> None:
        nonlocal root, accounts, items
        if anchor:
            anchors[anchor] = node
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent, _Seq):
            parent.value.append(node)
            if parent is not accounts:
                items += 1
                if items > _config.MAX_COUNTERS:
                    raise _Problem(node.line, too_many())
        elif pending_key[-1] is None:
            pending_key[-1] = node
        else:
            key = pending_key[-1]
            assert key is not None
            parent.value.append((key, node))
            pending_key[-1] = None
            if parent is root and key.value == "accounts":
                accounts = node

    def checked_tag(event: Any) -> str | None:
        tag: str | None = event.tag
        if tag not in (None, "!") and tag not in _CORE_TAGS:
            raise _Problem(_line(event), f"the YAML tag {tag!r} is not allowed here: remove it")
        return tag

    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.ScalarEvent):
            tag = checked_tag(event)
            if tag in (None, "!"):
                tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
            quoted = event.style in ("'", '"')
            given = None if event.tag is None else event.tag.replace("tag:yaml.org,2002:", "!!")
            attach(_Scalar(tag, event.value, _line(event), quoted, given), event.anchor)
        elif isinstance(event, yaml.SequenceStartEvent):
            checked_tag(event)
            node: _Node = _Seq("seq", [], _line(event))
            attach(node, event.anchor)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, yaml.MappingStartEvent):
            checked_tag(event)
            node = _Map("map", [], _line(event))
            attach(node, event.anchor)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            stack.pop()
            pending_key.pop()
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise _Problem(_line(event), f"not valid YAML (undefined alias {event.anchor!r})")
            target = anchors[event.anchor]
            if not isinstance(target, _Scalar):  # a list reused a thousand times is a YAML bomb
                raise _Problem(
                    _line(event),
                    f"the alias *{event.anchor} repeats a whole list or mapping: write its counters out once",
                )
            # on its own line: a repeated ID is reported where it repeats
            attach(_Scalar(target.tag, target.value, _line(event), target.quoted, target.given_tag), None)
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Problem(_line(event), "not valid YAML (expected a single document, found another)")
    return root


def _line(event: Any) -> int:
    return event.start_mark.line if event.start_mark is not None else 0


class _Problem(Exception):
    """A structural YAML error found while composing: (0-based line, what)."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line, self.what = line, what


class _Stop(Exception):
    """Structure too broken to read on: report what was found so far."""


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids = Ids(path)

    def fail(self, node: _Node | None, what: str) -> None:
        self.ids.problem(node.line + 1 if node is not None else None, what)

    def fatal(self, node: _Node | None, what: str) -> _Stop:
        self.fail(node, what)
        return _Stop()

    def config(self, root: _Node | None) -> Config:
        try:
            accounts = self.top(root)
        except _Stop:
            accounts = []
        if self.ids.errors:
            raise ConfigError(self.ids.errors)
        return self.ids.result(accounts)

    def top(self, root: _Node | None) -> list[Account]:
        if root is None or (isinstance(root, _Scalar) and root.tag == _NULL_TAG):
            raise self.fatal(None, "the file is empty: expected a list of counter IDs")
        if isinstance(root, _Seq):
            return [self.account_counters(DEFAULT_ACCOUNT, None, None, root)]
        if isinstance(root, _Map):
            top = self.mapping(root, required=set(), allowed={"counters", "accounts", "ulogin", "exclude"})
            if "counters" in top and "accounts" in top:
                raise self.fatal(root, "use either `counters:` or `accounts:`, not both")
            if "counters" in top:
                ulogin = self.ulogin(top["ulogin"]) if "ulogin" in top else None
                return [
                    self.account_counters(DEFAULT_ACCOUNT, None, ulogin, top["counters"], top.get("exclude"))
                ]
            if "exclude" in top:
                raise self.fatal(top["exclude"], "with `accounts:`, give `exclude:` inside each account")
            if "accounts" in top:
                if "ulogin" in top:
                    raise self.fatal(top["ulogin"], "with `accounts:`, give `ulogin:` inside each account")
                return self.accounts(top["accounts"])
            raise self.fatal(root, "expected `counters:` or `accounts:` at the top")
        raise self.fatal(root, self.not_a_list(root))

    def not_a_list(self, node: _Node) -> str:
        """What a file that is not a list most likely is, and how to fix it."""
        text = str(node.value) if isinstance(node, _Scalar) else ""
        if isinstance(node, _Scalar) and node.tag == _STR_TAG:
            if re.fullmatch(r"[0-9\s]+", text):
                return (
                    "IDs one per line need `- ` in front (a YAML list), e.g. `- 12345`; or give the "
                    "file a .txt extension"
                )
            if MANY_IDS.fullmatch(text):
                return "several IDs on one line: put each on its own line as `- 12345`"
        if isinstance(node, _Scalar) and node.tag == _STR_TAG and text.strip().isalpha():
            return f"expected a list of counter IDs, or `all` for every editable one, got {_shown(node)}"
        return f"expected a list of counter IDs, got {_shown(node)}"

    def mapping(self, node: _Map, required: set[str], allowed: set[str]) -> dict[str, _Node]:
        out: dict[str, _Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, _Scalar) else None
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                if not isinstance(key, str):
                    raise self.fatal(key_node, f"unknown key {_shown(key_node)} (expected {expected})")
                close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
                hint = f": did you mean `{close[0]}`?" if close else ""
                raise self.fatal(key_node, f"unknown key `{key}`{hint} (expected {expected})")
            if key in out:
                raise self.fatal(key_node, f"key `{key}` given twice")
            out[key] = value
        for key in sorted(required - out.keys()):
            raise self.fatal(node, f"missing key `{key}`")
        return out

    def accounts(self, node: _Node) -> list[Account]:
        if not isinstance(node, _Seq) or not node.value:
            raise self.fatal(
                node, "`accounts:` must be a non-empty list of {name, token_env or token_file, counters}"
            )
        accounts: list[Account] = []
        names: set[str] = set()
        for item in node.value:
            if not isinstance(item, _Map):
                raise self.fatal(item, f"an account must be a mapping, got {_shown(item)}")
            fields = self.mapping(
                item,
                required={"name", "counters"},
                allowed={"name", "token_env", "token_file", "counters", "ulogin", "exclude"},
            )
            name = no_surrogates(self.text(fields["name"], "account name")).strip()
            if not name:
                raise self.fatal(fields["name"], "account name is empty")
            if not name.isprintable():  # it reaches the terminal, logs and file names: no control codes
                raise self.fatal(
                    fields["name"],
                    f"account name {PLAIN.clean(name, 60)!r} has control characters: give a plain name",
                )
            if name in names:
                raise self.fatal(fields["name"], f"account `{name}` given twice")
            names.add(name)
            if ("token_env" in fields) == ("token_file" in fields):
                given = "both" if "token_env" in fields else "neither"
                raise self.fatal(
                    item,
                    f"account `{name}`: give its token as token_env (an environment variable's NAME) or "
                    f"token_file (a file's path), one of them ({given} given)",
                )
            env = self.token_env(fields["token_env"]) if "token_env" in fields else None
            ulogin = self.ulogin(fields["ulogin"]) if "ulogin" in fields else None
            account = self.account_counters(name, env, ulogin, fields["counters"], fields.get("exclude"))
            if "token_file" in fields:
                account = replace(account, token_file=self.token_file(fields["token_file"]))
            accounts.append(account)
        return accounts

    def token_file(self, node: _Node) -> Path:
        text = str(node.value).strip() if isinstance(node, _Scalar) and node.tag == _STR_TAG else ""
        if not text or (looks_like_token(text) and "/" not in text and "." not in text):
            # Never echo it: people paste the token itself here too.
            raise self.fatal(
                node,
                "token_file must be the path of a file holding the token (e.g. tokens/client-a.token, "
                "beside the config), never the token itself",
            )
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.path.parent / path

    def token_env(self, node: _Node) -> str:
        env = str(node.value).strip() if isinstance(node, _Scalar) and node.tag == _STR_TAG else ""
        if not ENV_NAME.fullmatch(env):
            # Never echo it: people paste the token itself here.
            raise self.fatal(
                node,
                "token_env must be the NAME of an environment variable holding the token "
                "(e.g. METRICA_TOKEN_CLIENT_A), never the token itself",
            )
        return env

    def ulogin(self, node: _Node) -> str | None:
        if isinstance(node, _Scalar) and node.tag == _NULL_TAG:
            return None
        login = self.text(node, "ulogin").strip()
        if not LOGIN_PATTERN.fullmatch(login):
            raise self.fatal(
                node,
                f"ulogin {_shown(node)} is not a Yandex login (letters, digits, '.', '-', '_', '@')",
            )
        return login

    def account_counters(
        self,
        account: str,
        token_env: str | None,
        ulogin: str | None,
        node: _Node,
        exclude: _Node | None = None,
    ) -> Account:
        if isinstance(node, _Scalar) and node.tag == _STR_TAG and str(node.value).strip().lower() == "all":
            return Account(account, token_env, (), ulogin, every=True, exclude=self.excluded(exclude))
        if exclude is not None:
            raise self.fatal(
                exclude, "`exclude:` goes with `counters: all` (a list names its counters itself)"
            )
        if not isinstance(node, _Seq):
            raise self.fatal(node, self.not_a_list(node))
        if not node.value:
            raise self.fatal(node, f"no counters listed for account `{account}`")
        counters: list[Counter] = []
        items, node.value = node.value[::-1], []  # consumed as read: nodes and counters never peak together
        while items:
            counter = self.counter(items.pop(), account)
            if counter is not None:
                counters.append(counter)
        return Account(account, token_env, tuple(counters), ulogin)

    def excluded(self, node: _Node | None) -> frozenset[int]:
        """The IDs of `exclude:` (a list, or one ID), each checked like a counter ID."""
        if node is None or (isinstance(node, _Scalar) and node.tag == _NULL_TAG):
            return frozenset()
        items = node.value if isinstance(node, _Seq) else [node]
        return frozenset(cid for item in items if (cid := self.counter_id(item)) is not None)

    def counter(self, node: _Node, account: str) -> Counter | None:
        label = ""
        id_node = node
        if isinstance(node, _Map):
            try:
                fields = self.mapping(node, required={"id"}, allowed={"id", "label"})
            except _Stop:
                return None
            id_node = fields["id"]
            if "label" in fields:
                label = self.label(fields["label"])
        counter_id = self.counter_id(id_node)
        if counter_id is None or not self.ids.add(counter_id, id_node.line + 1):
            return None
        return Counter(counter_id, label, account)

    def counter_id(self, node: _Node) -> int | None:
        line = node.line + 1
        if not isinstance(node, _Scalar):
            self.fail(node, f"counter ID must be a positive whole number, got {_shown(node)}")
            return None
        value = str(node.value)
        if node.given_tag is not None and DIGITS.fullmatch(value.strip()):
            # `!!str 123` is no more an ID than "123" is; a wrong number is said as such first
            number = id_from_text(value.strip(), line, self.ids, _shown(node))
            if number is not None:
                what = f"counter ID must be a positive whole number, got {node.given_tag} {number}"
                self.fail(node, f"{what}: remove the tag, write {number}")
            return None
        if node.quoted and DIGITS.fullmatch(value.strip()):
            value = repr(value)  # shown as typed, quotes and all, for the hint
        elif node.tag not in (_INT_TAG, _STR_TAG, "tag:yaml.org,2002:float"):
            value = "\0"  # a bool, a date, an empty value: no hint applies
        return id_from_text(value, line, self.ids, _shown(node))

    def label(self, node: _Node) -> str:
        if isinstance(node, _Scalar) and node.tag == _NULL_TAG:
            return ""
        if isinstance(node, _Scalar):  # a number or a date as a label is fine: it is shown as typed
            return no_surrogates(str(node.value))
        self.fail(node, f"label must be text, got {_shown(node)}")
        return ""

    def text(self, node: _Node, what: str) -> str:
        if isinstance(node, _Scalar) and node.tag == _STR_TAG:
            return str(node.value)
        raise self.fatal(node, f"{what} must be text, got {_shown(node)}")


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
