"""Reliability at CI size: fuzzed configs, hostile answers, heavy faults, repeated kills.
`make bench` runs the same checks bigger (BULK_ENABLE_FUZZ_EXAMPLES and larger sizes)."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import logging
import os
import random
import re
import signal
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from aioresponses import aioresponses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_enable import ConfigError, Policy, Settings, parse_config, run_job
from bulk_enable._cli import main
from bulk_enable._config import MAX_ERRORS, load_config
from bulk_enable._model import MAX_ID
from bulk_enable._progress import CliEvents
from bulk_enable._report import journal_path, read_journal

from .conftest import TOKEN, SandboxFactory, cli, run_against, start_process, statuses, write_config

EXAMPLES = int(os.environ.get("BULK_ENABLE_FUZZ_EXAMPLES", "150"))
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.dates(),
)
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.sampled_from(["counters", "accounts", "id", "label", "name", "token_env", "ulogin", "x"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
yaml_ish = st.text(alphabet="- :{}[],'\"&*!|>#\n\t 0123456789abyesnoid.\\%@`", max_size=80)


@given(st.one_of(trees.map(lambda t: yaml.safe_dump(t, allow_unicode=True)), yaml_ish))
@settings(max_examples=EXAMPLES * 2, deadline=None)
def test_loader_accepts_or_refuses_in_one_line(text: str) -> None:
    """Any text: a valid job of positive unique IDs, or ConfigError lines naming the file; nothing else."""
    try:
        config = parse_config(text, Path("fuzz.yaml"))
    except ConfigError as e:
        lines = e.lines
    else:
        lines = []
    if lines:
        assert all(line.startswith("fuzz.yaml: ") and "\n" not in line for line in lines)
        return
    ids = [c.id for c in config.counters]
    assert ids and all(isinstance(i, int) and 0 < i < 2**63 for i in ids)
    assert len(ids) == len(set(ids))


@given(yaml_ish)
@settings(
    max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_bad_input_never_sends_a_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """The real CLI on fuzzed input: exit 2 and no request for bad input."""
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("YANDEX_METRICA_TOKEN", "fuzz-token")
    try:
        parse_config(text, path)
        valid = True
    except ConfigError:
        valid = False
    code, sent = run_offline(path, tmp_path / "r.csv")
    if not valid:
        assert (code, sent) == (2, 0)


def run_offline(config: Path, report: Path) -> tuple[int, int]:
    """`bulk-enable run CONFIG` through main() with every request answered by aioresponses: the exit
    code and how many requests were sent."""
    with (
        aioresponses() as m,
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        code = main(["run", str(config), "--report", str(report), "-q", "--max-attempts", "1", "--fresh"])
        return code, len(m.requests)


# --- tables: exactly the IDs a strict CSV reader sees, or refused ---------------------------------------

ENCODINGS = ["utf-8", "utf-8-sig", "cp1251", "utf-16"]
BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
noise = st.sampled_from(['"', '""', "'", ",", ";", " ", "#", "a", "Ж", "\x00", "\ufeff", "\xa0", *BREAKS])
id_texts = st.one_of(
    st.integers(min_value=1, max_value=MAX_ID).map(str),
    st.sampled_from(["0", "012", str(MAX_ID + 1), "-5", "1.5", "1 000"]),
)
pieces = st.lists(st.one_of(id_texts, id_texts, noise, st.just("\t"), st.just("\n")), max_size=4).map("".join)
endings = st.sampled_from(["\n", "\r\n"])


@st.composite
def hostile_tables(draw: st.DrawFn) -> tuple[str, str]:
    """(extension, text): a .csv (a header, then rows of IDs, quotes, separators, stray line breaks) or
    a .txt of such lines (no tabs: a tab would make it a table)."""
    if draw(st.booleans()):
        delimiter = draw(st.sampled_from([",", ";", "\t"]))
        rows = draw(st.lists(st.tuples(st.lists(pieces, min_size=1, max_size=3), endings), max_size=6))
        return ".csv", f"counter_id{delimiter}label\n" + "".join(delimiter.join(r) + e for r, e in rows)
    lines = draw(st.lists(st.tuples(pieces.map(lambda p: p.replace("\t", " ")), endings), max_size=8))
    return ".txt", "".join(line + e for line, e in lines)


def strict_ids(suffix: str, text: str) -> list[int] | None:
    """The reference: the IDs a strict CSV reader sees (the first column under a .csv's header; in a
    .txt each line up to a `#`), first listing of each; None when it cannot read them all as IDs."""
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if suffix == ".csv" else "\x1f"
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    found: list[int] = []
    for row in rows[1:] if suffix == ".csv" else rows:
        if suffix == ".txt":
            row = [row[0].split("#", 1)[0]] if row else []
        if not any(cell.strip() for cell in row):
            continue
        cell = row[0].strip()
        if not re.fullmatch(r"[1-9][0-9]*", cell) or int(cell) > MAX_ID:
            return None
        if int(cell) not in found:
            found.append(int(cell))
    return found


def encoded(text: str, encoding: str) -> bytes:
    """`text` in `encoding`, or in UTF-8 where Windows-1251 has no byte for one of its characters."""
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")


@given(hostile_tables(), st.sampled_from(ENCODINGS))
@settings(max_examples=EXAMPLES * 2, deadline=None)
def test_a_table_loads_exactly_what_a_strict_csv_reader_sees_or_is_refused(
    table: tuple[str, str], encoding: str
) -> None:
    """Any .csv or .txt (quotes, separators, encodings, control characters, CRLF): exactly the IDs a
    strict CSV reader sees, or ConfigError lines naming the file; never a line silently swallowed."""
    suffix, text = table
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"job{suffix}"
        raw = encoded(text, encoding)
        path.write_bytes(raw)
        try:
            ids: list[int] | None = [c.id for c in load_config(path).counters]
        except ConfigError as e:
            ids, lines = None, e.lines
    if ids is None:
        assert 1 <= len(lines) <= MAX_ERRORS + 1
        assert all(line.startswith((f"{path}: ", "... and more")) for line in lines), lines
        return
    if encoding != "utf-8-sig" and raw.startswith(codecs.BOM_UTF8):
        text = text.removeprefix("\ufeff")  # the text's own U+FEFF became the file's UTF-8 mark
    expected = strict_ids(suffix, text)
    assert expected is not None, "loaded what a strict CSV reader does not read as IDs"
    assert ids == expected


labels = st.text(
    st.characters(codec="cp1251", exclude_characters="\n" + "".join(BREAKS)), max_size=12
).filter(lambda label: not label.startswith("'"))


@given(
    st.lists(st.tuples(st.integers(min_value=1, max_value=MAX_ID), labels), min_size=1, max_size=8),
    st.sampled_from([",", ";", "\t"]),
    endings,
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    st.sampled_from(ENCODINGS),
)
@settings(max_examples=EXAMPLES, deadline=None)
def test_a_table_a_csv_writer_wrote_loads_as_written(
    rows: list[tuple[int, str]], delimiter: str, ending: str, quoting: Literal[0, 1, 2], encoding: str
) -> None:
    """What Excel or a script writes (any separator, quoting, CRLF, encoding) loads: every ID once, in
    order, each with its label (compared where the encoding is a UTF, which no guess can misread)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=ending, quoting=quoting)
    writer.writerow(["counter_id", "label"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.csv"
        path.write_bytes(encoded(out.getvalue(), encoding))
        config = load_config(path)
    first: dict[int, str] = {}  # each ID's first listing
    for cid, label in rows:
        first.setdefault(cid, label)
    assert [c.id for c in config.counters] == list(first)
    if encoding != "cp1251":
        assert [(c.id, c.label) for c in config.counters] == list(first.items())


@given(hostile_tables())
@settings(
    max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_refused_table_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: tuple[str, str]
) -> None:
    """The real CLI on a fuzzed .csv or .txt: refused by the loader means exit 2 and no request."""
    suffix, text = table
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / f"job{suffix}"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("YANDEX_METRICA_TOKEN", "fuzz-token")
    try:
        load_config(path)
    except ConfigError:
        assert run_offline(path, path.with_suffix(".report.csv")) == (2, 0)


# --- hostile answers through the whole run ------------------------------------------------------------

BASE = "https://api-metrika.yandex.net"
WRITE = re.compile(rf"{BASE}/management/v1/counter/(\d+)/offline_conversions/calls_extended_threshold.*")
nasty_text = st.one_of(
    st.text(max_size=40),
    st.just(TOKEN),
    st.just("x" * 190 + TOKEN),
    st.just("\x1b[31mred\x1b[0m\r\nInjected: line"),
    st.just("bad \ud800 surrogate"),
    st.just("\u202eevil\u2066"),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20).map(lambda t: t + TOKEN[:9]),
)
answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 200, 301, 400, 401, 403, 404, 420, 429, 500, 502, 503, 504, 418]),
        "error_type": st.one_of(
            st.sampled_from(
                ["access_denied", "invalid_token", "quota_requests_by_ip", "backend_error", "not_found"]
            ),
            nasty_text,
        ),
        "message": nasty_text,
        "shape": st.sampled_from(["metrica", "success", "garbage", "html", "empty", "false"]),
        "retry_after": st.one_of(
            st.none(), st.sampled_from(["1e400", "99999", "nan", "-5", "soon", "0.001"])
        ),
    }
)


def body_of(answer: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    shape, status = answer["shape"], answer["status"]
    if shape == "metrica":
        error = {"error_type": answer["error_type"], "message": answer["message"]}
        return None, {"errors": [error], "code": status, "message": answer["message"]}
    if shape == "success":
        return None, {"success": True}
    if shape == "false":
        return None, {"success": False, "note": answer["message"]}
    if shape == "html":
        return f"<html>{answer['message']}</html>", None
    if shape == "garbage":
        return answer["message"] + "{not json", None
    return "", None


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@given(st.lists(answers, min_size=1, max_size=6))
@settings(
    max_examples=EXAMPLES // 4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_hostile_answers_never_crash_leak_or_inject(tmp_path: Path, script: list[dict[str, Any]]) -> None:
    """Whatever the API answers (codes, headers, bodies, echoed tokens, escape sequences, surrogates):
    no exception escapes the run, the token never reaches the log or the report, no control character
    reaches the log, and the report is valid UTF-8 CSV with a row per counter."""
    report = Path(tempfile.mkdtemp(dir=tmp_path)) / "r.csv"
    config = parse_config("".join(f"- {i}\n" for i in range(1, len(script) + 1)), tmp_path / "job.yaml")
    capture = _Capture()
    log = logging.getLogger("bulk_enable")
    log.addHandler(capture)
    log.setLevel(logging.DEBUG)
    policy = Policy(
        backoff_initial=0, backoff_max=0.001, slow_down=0.001, rps=0, max_attempts=2, quota_answers_cap=3
    )
    settings_ = Settings(config, {"default": TOKEN}, report, BASE, policy=policy, events=CliEvents(False))
    try:
        with aioresponses() as m:
            for cid, answer in enumerate(script, start=1):
                text, payload = body_of(answer)
                headers = {"Retry-After": answer["retry_after"]} if answer["retry_after"] else {}
                if answer["status"] == 301:
                    headers["Location"] = f"http://127.0.0.1:9/steal?token={TOKEN}"
                url = re.compile(rf"{BASE}/management/v1/counter/{cid}/offline_conversions/.*")
                raw = (text or "").encode("utf-8", "surrogatepass")  # a hostile server sends any bytes
                kwargs: dict[str, Any] = {"payload": payload} if payload is not None else {"body": raw}
                m.post(url, status=answer["status"], headers=headers, repeat=True, **kwargs)
            import asyncio

            summary = asyncio.run(run_job(settings_))
    finally:
        log.removeHandler(capture)
    raw = report.read_bytes()
    text_out = raw.decode("utf-8")  # valid UTF-8, or this raises
    journal = journal_path(report).read_bytes().decode("utf-8")
    shown = "\n".join(capture.lines)
    for where in (text_out, journal, shown):
        assert TOKEN[:8] not in where and TOKEN[-8:] not in where
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in shown.replace("\n", ""))
    rows = list(csv.DictReader(io.StringIO(text_out.lstrip("\ufeff"), newline="")))
    assert [int(r["counter_id"]) for r in rows] == list(range(1, len(script) + 1))
    assert len(summary.rows) == len(script)


# --- faults and kills ------------------------------------------------------------------------------


def test_heavy_faults_lose_nothing(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """1,000 counters at 25% transient faults: all enabled, none written twice (5,000 in `make bench`)."""
    box = sandbox_factory(fault_rate=0.25, faults=["backend_error", "timeout", "html_500", "drop"], ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 1001))
    done = run_against(
        box, config, tmp_path / "r.csv", "--rps", "1000", "--backoff", "0.005", "--max-attempts", "15", "-q"
    )
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    assert stats["counters_written"] == 1000 and stats["counters_written_twice"] == 0
    assert sum(stats["faults"].values()) > 200


@pytest.mark.e2e
def test_repeated_kills_lose_nothing(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """3 runs killed with kill -9 at random moments, then a rerun: all enabled, repeats <= 3 per kill."""
    box = sandbox_factory(latency=0.005, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 601))
    report = tmp_path / "r.csv"
    args = ["run", str(config), "--report", str(report), "--api-base", box.url, "--rps", "1000", "--quiet"]
    rng = random.Random(5)
    kills = 0
    for _ in range(3):
        proc = start_process(*args)
        before = box.stats()["write_requests"]
        target = before + rng.randint(20, 120)
        deadline = time.monotonic() + 20
        while box.stats()["write_requests"] < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        written = set(map(int, box.stats()["writes"]))
        _, rows = read_journal(journal_path(report))
        journaled = {cid for cid, r in rows.items() if r.status == "enabled"}
        assert len(written - journaled) <= 3  # only what was in flight at the kill
    done = cli(*args)
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert set(statuses(report).values()) == {"enabled"}
    assert stats["counters_written"] == 600
    assert stats["repeated_writes"] <= 3 * kills
