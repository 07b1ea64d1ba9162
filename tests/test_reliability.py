"""Reliability at CI size: fuzzed configs, heavy faults, repeated kills. `make bench` runs them bigger."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aioresponses import aioresponses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_enable import ConfigError, parse_config
from bulk_enable._cli import main
from bulk_enable._report import journal_path, read_journal

from .conftest import run_against, run_cli, start_cli, statuses, write_config

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
            st.sampled_from(["counters", "accounts", "id", "label", "name", "token_env", "x"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
yaml_ish = st.text(alphabet="- :{}[],'\"&*!|>#\n\t 0123456789abyesnoid.\\%@`", max_size=80)


@given(st.one_of(trees.map(lambda t: yaml.safe_dump(t, allow_unicode=True)), yaml_ish))
@settings(max_examples=int(os.environ.get("BULK_ENABLE_FUZZ_EXAMPLES", "400")), deadline=None)
def test_loader_accepts_or_refuses_in_one_line(text: str) -> None:
    """Any text: a valid job of positive unique IDs, or a one-line ConfigError; never another exception."""
    try:
        config = parse_config(text, Path("fuzz.yaml"))
    except ConfigError as e:
        message = str(e)
    else:
        message = ""
    if message:
        assert "\n" not in message and message.startswith("fuzz.yaml: ")
        return
    ids = [c.id for c in config.counters]
    assert ids and all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))


@given(yaml_ish)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_bad_input_never_sends_a_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """The real CLI on fuzzed input: exit 0/1/3 only for valid jobs, and no request for bad ones."""
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("YANDEX_METRICA_TOKEN", "fuzz-token")
    try:
        parse_config(text, path)
        valid = True
    except ConfigError:
        valid = False
    with aioresponses() as m:  # any request, to anywhere, is recorded (and refused)
        code = main(["run", str(path), "--report", str(tmp_path / "r.csv"), "--quiet", "--max-attempts", "1"])
        sent = len(m.requests)
    if not valid:
        assert (code, sent) == (2, 0)


def test_heavy_faults_lose_nothing(tmp_path: Path, sandbox_factory: Any) -> None:
    """1,000 counters at 25% transient faults: all enabled, none written twice (5,000 in `make bench`)."""
    box = sandbox_factory(fault_rate=0.25, faults=["backend_error", "timeout", "html_500", "drop"], ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 1001))
    done = run_against(
        box,
        config,
        tmp_path / "r.csv",
        "--rps",
        "0",
        "--backoff",
        "0.005",
        "--max-attempts",
        "15",
        "--quiet",
    )
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    assert stats["counters_written"] == 1000 and stats["counters_written_twice"] == 0
    assert sum(stats["faults"].values()) > 200


def test_repeated_kills_lose_nothing(tmp_path: Path, sandbox_factory: Any) -> None:
    """3 runs killed with kill -9 at random moments, then a rerun: all enabled, repeats <= 3 per kill."""
    box = sandbox_factory(latency=0.005, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 601))
    report = tmp_path / "r.csv"
    args = ["run", str(config), "--report", str(report), "--api-base", box.url, "--rps", "0", "--quiet"]
    rng = random.Random(5)
    kills = 0
    for _ in range(3):
        proc = start_cli(*args)
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
        journaled = {r.counter_id for r in rows if r.status == "enabled"}
        assert len(written - journaled) <= 3  # only what was in flight at the kill
    done = run_cli(*args)
    stats = box.stats()
    assert done.returncode == 0, done.stderr
    assert set(statuses(report).values()) == {"enabled"}
    assert stats["counters_written"] == 600
    assert stats["repeated_writes"] <= 3 * kills
