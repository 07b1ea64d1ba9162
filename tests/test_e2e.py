"""End to end as a process, for what only a process shows: signals, kill -9, exit codes, the split of
stdout and stderr, a closed stdout, and the package installed with pip and run from another folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from bulk_enable import Policy

from .conftest import (
    REPO,
    SandboxFactory,
    cli,
    cli_env,
    journal_statuses,
    read_report,
    run_process,
    start_process,
    statuses,
    write_config,
)

pytestmark = pytest.mark.e2e
FAST = ("--backoff", "0.01")


def reading_the_pipe(pid: int, pipe: Path) -> bool:
    """The process sits in read() on `pipe`. A signal that lands between its open() and its read()
    is only acted on after the read, so a test that means "while it reads" must wait for this. The
    kernel says where the process sleeps (wchan); where it hides that, the process sleeps with the
    pipe open, which after its open() is the read."""
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():  # not Linux: nothing to look at, so give it time
        time.sleep(0.5)
        return True
    try:
        where = (proc / "wchan").read_text().strip()
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        files = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
    except OSError:  # it ended, or an fd closed while we looked: look again
        return False
    if where not in ("", "0"):
        return "pipe_read" in where
    return state == "S" and str(pipe) in files


def ignores(pid: int, signum: signal.Signals) -> bool:
    """The kernel discards `signum` for this process (its disposition is SIG_IGN): sending it can
    change nothing, now or later."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    return bool(mask >> (signum - 1) & 1)


def rendered(report: Path) -> tuple[int, int] | None:
    """Which render the report on disk is (each one replaces the file), or None before the first."""
    try:
        stat = report.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def wait_for(condition: object, timeout: float = 30.0) -> None:
    """Poll until `condition()` holds; `timeout` only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


class Output:
    """A child's stdout and stderr, read as they come: a test waits for a line, not for time."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((proc.stdout, self.out), (proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            lines.append("")  # the end
            self._changed.notify_all()

    def wait_for_line(self, text: str, timeout: float = 30.0) -> None:
        """Wait until stderr has a line with `text` (`timeout` only guards against a hang)."""
        with self._changed:
            self._changed.wait_for(lambda: any(text in line for line in self.err) or "" in self.err, timeout)
            assert any(text in line for line in self.err), f"no {text!r} on stderr: {''.join(self.err)}"

    def finish(self, timeout: float = 30.0) -> tuple[str, str]:
        """Wait for the process to end (killed if it outlives `timeout`); its stdout and stderr."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for reader in self._readers:
            reader.join(timeout)
        return "".join(self.out), "".join(self.err)


def test_a_run_as_a_process(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """Exit 1 with some failed; the summary on stdout, log lines on stderr; peak in flight exactly 3."""
    box = sandbox_factory(latency=0.05, fixed={7: "access_denied"}, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 31))
    done = run_process("run", config, "--report", tmp_path / "r.csv", "--api-base", box.url, "--rps", "1000")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("done: 29 enabled, 1 failed (30 counters")
    assert "bulk-enable: " not in done.stdout and "done:" not in done.stderr
    assert box.stats()["peak_in_flight"] == {"agency": 3}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_writes_the_report_and_exits_130(
    tmp_path: Path, sandbox_factory: SandboxFactory, signum: signal.Signals
) -> None:
    """Ctrl-C, SIGTERM or SIGHUP (a dropped SSH session): requests in flight finish, the report is
    written, the rest deferred; a rerun finishes with nothing written twice."""
    box = sandbox_factory(latency=0.05, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 121))
    report = tmp_path / "r.csv"
    proc = start_process(
        "run", config, "--report", report, "--api-base", box.url, *FAST, "--rps", "1000", capture=True
    )
    wait_for(lambda: box.stats()["write_requests"] >= 20)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    box.set_latency(0)  # the slow answers only kept the job running until the signal
    assert proc.returncode == 130, err
    got = list(statuses(report).values())
    assert got.count("enabled") == box.stats()["counters_written"]
    assert got.count("deferred") == 120 - got.count("enabled")
    assert "Traceback" not in err and "next: interrupted; run the same command again" in out
    done = cli("run", config, "--report", report, "--api-base", box.url, "--rps", "1000")
    assert done.returncode == 0 and box.stats()["repeated_writes"] == 0


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_a_signal_ignored_from_the_start_stays_ignored(
    tmp_path: Path, sandbox_factory: SandboxFactory, signum: signal.Signals
) -> None:
    """`nohup bulk-enable run ... &` outlives its terminal: a signal the parent ignored does not stop
    the job, which finishes every counter."""
    box = sandbox_factory(latency=0.05, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 121))
    report = tmp_path / "r.csv"
    proc = start_process(
        "run", config, "--report", report, "--api-base", box.url, *FAST, "--rps", "1000",
        capture=True, ignoring=signum,
    )  # fmt: skip
    wait_for(lambda: box.stats()["write_requests"] >= 20)
    proc.send_signal(signum)
    box.set_latency(0)  # the signal has landed (or was discarded) mid-run: let the job finish
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "interrupted" not in err
    assert list(statuses(report).values()).count("enabled") == 120


def test_a_second_signal_abandons_quietly(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """A second Ctrl-C abandons the (slow) requests in flight: no traceback, the report is written
    from the journal, exit 130; the requests it abandoned never finish."""
    box = sandbox_factory(latency=120.0, ip_rps=0)  # far longer than the test waits for anything
    config = write_config(tmp_path / "job.yaml", range(1, 101))
    report = tmp_path / "r.csv"
    proc = start_process("run", config, "--report", report, "--api-base", box.url, capture=True)
    output = Output(proc)
    wait_for(lambda: box.stats()["write_requests"] >= 1)  # the first write goes alone (slow start)
    proc.send_signal(signal.SIGINT)
    output.wait_for_line("interrupted: finishing the requests in flight")  # the first one is in
    proc.send_signal(signal.SIGINT)
    _out, err = output.finish()  # a process that waited for its requests would take two minutes
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Error" not in err and "abandoning" in err
    assert set(statuses(report).values()) == {"deferred"}
    assert box.stats()["counters_written"] == 0


def test_kill_9_then_report_then_rerun_loses_nothing(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """kill -9 mid-run: the report on disk follows the writes while the job runs (the second render
    after any moment shows all written before it but the requests in flight), and is whole after the
    kill; `report` restores it to within the requests in flight; a rerun repeats at most those.
    (How far behind a render may be, in seconds, is measured on the loop's clock in test_report.)"""
    box = sandbox_factory(latency=0.01, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 801))  # 8 s at 100/s; renders every 2 s
    report = tmp_path / "r.csv"
    proc = start_process("run", config, "--report", report, "--api-base", box.url, *FAST, "--rps", "100")
    wait_for(lambda: box.stats()["write_requests"] >= 20)
    before = {int(c) for c in box.stats()["writes"]}
    renders = [rendered(report)]
    for _ in range(2):
        wait_for(lambda: rendered(report) != renders[-1])
        renders.append(rendered(report))
    shown = {cid for cid, status in statuses(report).items() if status == "enabled"}
    assert len(before - shown) <= 3  # only what was in flight
    assert proc.poll() is None  # still running (about half done): the kill lands mid-run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    box.set_latency(0)  # for the rerun
    stats = box.stats()
    on_disk = {cid for cid, status in statuses(report).items() if status == "enabled"}
    assert shown <= on_disk <= {int(c) for c in stats["writes"]}
    written = {int(c) for c in stats["writes"]}
    assert cli("report", report).returncode == 0
    restored = {cid for cid, s in statuses(report).items() if s == "enabled"}
    assert restored <= written and len(written - restored) <= 3
    assert {cid for cid, s in journal_statuses(report).items() if s == "enabled"} == restored
    done = cli("run", config, "--report", report, "--api-base", box.url, "--rps", "1000")
    assert done.returncode == 0
    assert set(statuses(report).values()) == {"enabled"}
    assert box.stats()["counters_written"] == 800 and box.stats()["repeated_writes"] <= 3


def test_interrupting_an_until_done_wait_exits_at_once(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Ctrl-C while an account waits hours for the quota reset: exit 130 at once, report written."""
    box = sandbox_factory(daily_limit=5, ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 21))
    report = tmp_path / "r.csv"
    reset = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).strftime("%H:%M")
    args = ("run", config, "--report", report, "--api-base", box.url, "--until-done", "--quota-reset", reset)
    proc = start_process(*args, capture=True)
    output = Output(proc)
    output.wait_for_line("waiting until")  # 5 done, then the quota answer: it waits for the reset
    proc.send_signal(signal.SIGINT)
    _out, err = output.finish()  # a wait the signal did not wake would last a minute (RECHECK) or hours
    assert proc.returncode == 130, err
    assert "waiting until" in err
    got = list(statuses(report).values())
    assert got.count("enabled") == 5 and got.count("deferred") == 15


@pytest.mark.parametrize("command", ["run", "counters"])
def test_a_closed_stdout_ends_quietly(tmp_path: Path, sandbox_factory: SandboxFactory, command: str) -> None:
    """`bulk-enable run ... | true` and `bulk-enable counters | head -1`: no BrokenPipeError traceback."""
    box = sandbox_factory(counters="1-3000", ip_rps=0)
    config = write_config(tmp_path / "job.yaml", range(1, 4))
    args = ["run", str(config), "--report", str(tmp_path / "r.csv")] if command == "run" else ["counters"]
    line = " ".join([sys.executable, "-m", "bulk_enable", *args, "--api-base", box.url])
    reader = "true" if command == "run" else "head -1"
    done = subprocess.run(
        ["bash", "-c", f"{line} | {reader}; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=REPO,
        timeout=60,
    )
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 0


def test_unreachable_api_stops_quickly(tmp_path: Path) -> None:
    """Nothing listening: the run stops after a dozen requests with one clear reason and next step, exit 3."""
    config = write_config(tmp_path / "job.yaml", range(1, 500))
    done = run_process(
        "run", config, "--report", tmp_path / "r.csv", "--api-base", "http://127.0.0.1:9", "--backoff", "0.01"
    )
    assert done.returncode == 3
    # it stops after 2 counters' worth of failed attempts in a row, and what was in flight then: not
    # 499 counters x 6 attempts, with backoffs between
    policy = Policy()
    sent = sum(int(row["attempts"]) for row in read_report(tmp_path / "r.csv"))
    assert sent <= policy.unreachable_after * policy.max_attempts + policy.concurrency - 1
    assert "cannot reach the API" in done.stdout and "next: check --api-base and the network" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("listen", [[], ["--host", "0.0.0.0", "--expose"]], ids=["loopback", "exposed"])
def test_sandbox_command_explains_itself(tmp_path: Path, listen: list[str]) -> None:
    """`bulk-enable sandbox` prints its URL first on stdout, names its token on stderr, and serves;
    exposed on every address, the URL it prints is a loopback one, which `run` takes as printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulk_enable", "sandbox", *listen],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        lines = [proc.stderr.readline() for _ in range(3)]
        assert any("sandbox-token" in line for line in lines)
        assert any("bulk-enable run" in line for line in lines)
        config = write_config(tmp_path / "job.yaml", [12345678, 23456789])
        plan = cli(
            "check",
            config,
            "--report",
            tmp_path / "p.csv",
            "--api-base",
            url,
            env=cli_env(YANDEX_METRICA_TOKEN="sandbox-token"),
        )
        assert plan.returncode == 0 and set(statuses(tmp_path / "p.csv").values()) == {"would_enable"}
        done = cli(
            "run",
            config,
            "--report",
            tmp_path / "r.csv",
            "--api-base",
            url,
            env=cli_env(YANDEX_METRICA_TOKEN="sandbox-token"),
        )
        assert done.returncode == 0, done.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def test_the_demo_runs_from_another_folder_after_pip_install(tmp_path: Path) -> None:
    """`pip install` the package into a fresh venv (offline) and run `bulk-enable demo` elsewhere: its
    config and profile come from the package, its report goes to ./reports/."""
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str | Path) -> str:
        done = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, REPO)
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    run(
        *pip,
        "--python",
        venv / "bin" / "python",
        "install",
        "--no-deps",
        "--no-index",
        next(dist.glob("*.whl")),
    )
    # The dependencies come from this test's own environment, read-only: nothing is downloaded.
    purelib = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"]
    assert Path(purelib, "bulk_enable").is_dir()
    Path(purelib, "zz_test_deps.pth").write_text(str(Path(aiohttp.__file__).parent.parent) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "YANDEX_METRICA_TOKEN")}
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import bulk_enable; print(bulk_enable.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=elsewhere,
    )
    assert where.stdout.startswith(purelib)  # the installed copy, not the source tree
    proc = subprocess.Popen(
        [venv / "bin" / "bulk-enable", "demo"],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    report = elsewhere / "reports" / "demo.csv"
    wait_for(lambda: report.exists() and "enabled" in report.read_text(encoding="utf-8-sig"), timeout=60)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    got = statuses(report)
    assert len(got) == 300 and "enabled" in got.values()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_before_the_job_starts_is_one_line_and_130(tmp_path: Path, signum: signal.Signals) -> None:
    """A signal while the config is still being read (here: a pipe nobody writes yet): exit 130 with one
    line, not a traceback or 143."""
    config = tmp_path / "ids.txt"
    os.mkfifo(config)
    proc = start_process("run", config, "--report", tmp_path / "r.csv", capture=True)

    writer: list[int] = []

    def reading() -> bool:  # a writer can open the pipe once the process has it open for reading
        try:
            writer.append(os.open(config, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    wait_for(reading)  # and the pipe stays open, empty: the process waits in its read
    wait_for(lambda: reading_the_pipe(proc.pid, config))
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=30)
    os.close(writer[0])
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().endswith("bulk-enable: interrupted")


def test_a_signal_ignored_from_the_start_is_ignored_before_the_job_too(tmp_path: Path) -> None:
    """Under `nohup`, SIGHUP while the config is still being read changes nothing; Ctrl-C still works."""
    config = tmp_path / "ids.txt"
    os.mkfifo(config)
    proc = start_process("run", config, "--report", tmp_path / "r.csv", capture=True, ignoring=signal.SIGHUP)
    writer: list[int] = []

    def reading() -> bool:
        with contextlib.suppress(OSError):
            writer.append(os.open(config, os.O_WRONLY | os.O_NONBLOCK))
        return bool(writer)

    wait_for(reading)
    wait_for(lambda: reading_the_pipe(proc.pid, config))
    assert ignores(proc.pid, signal.SIGHUP)  # so the kernel drops it: no handler can run, now or later
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: proc.poll() is not None or reading_the_pipe(proc.pid, config))
    assert proc.poll() is None  # still reading its config
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    os.close(writer[0])
    assert proc.returncode == 130, err


@pytest.mark.parametrize(
    ("shell", "token_works", "expected"),
    [
        ('"$@" | true; exit "${PIPESTATUS[0]}"', False, 3),  # the reader went away
        ('"$@" | true; exit "${PIPESTATUS[0]}"', True, 0),
        ('exec "$@" > /dev/full', False, 3),  # the disk of a `>> run.log` is full
        ('exec "$@" > /dev/full', True, 0),
        ('exec "$@" >&-', False, 3),  # closed before the start
        ('exec "$@" >&-', True, 0),
        ('exec "$@" 2>&-', False, 3),
        ('exec "$@" 2> /dev/full', True, 0),  # diagnostics that cannot be written are dropped
        ('exec "$@" --json 2> /dev/full', True, 0),
        ('exec "$@" > /dev/full 2> /dev/full', False, 3),
    ],
)
def test_the_exit_code_survives_a_stdout_or_stderr_that_cannot_take_it(
    tmp_path: Path, sandbox_factory: SandboxFactory, shell: str, token_works: bool, expected: int
) -> None:
    """A refused token is exit 3 and a done job 0 whatever became of the output streams: a scheduler
    reruns until 0, so a lost summary must never read as success (or as a crash)."""
    box = sandbox_factory(ip_rps=0) if token_works else sandbox_factory(tokens={"another-token": "x"})
    config = write_config(tmp_path / "job.yaml", [1, 2, 3])
    report = tmp_path / "r.csv"
    command = [sys.executable, "-m", "bulk_enable", "run", config, "--report", report, "--api-base", box.url]
    done = subprocess.run(
        ["bash", "-c", shell, "bash", *map(str, command)],
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == expected, done.stderr
    assert "Traceback" not in done.stderr
    assert set(statuses(report).values()) == ({"enabled"} if token_works else {"deferred"})


@pytest.mark.parametrize(("command", "expected"), [("counters", 3), ("report", 0)])
def test_a_full_stdout_is_one_line_for_counters_and_report(
    tmp_path: Path, sandbox_factory: SandboxFactory, command: str, expected: int
) -> None:
    """`counters > /dev/full` did not deliver its listing: exit 3; `report` did its work on disk: 0.
    One line either way, no traceback."""
    box = sandbox_factory()
    report = tmp_path / "r.csv"
    assert (
        cli(
            "run", write_config(tmp_path / "job.yaml", [1]), "--report", report, "--api-base", box.url
        ).returncode
        == 0
    )
    args = ["counters", "--api-base", box.url] if command == "counters" else ["report", str(report)]
    done = subprocess.run(
        ["bash", "-c", 'exec "$@" > /dev/full', "bash", sys.executable, "-m", "bulk_enable", *args],
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == expected and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "No space left" in done.stderr
