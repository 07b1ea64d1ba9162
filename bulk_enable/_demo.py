"""`bulk-enable demo`: the real `run` pipeline against an embedded sandbox with a realistic profile.

The demo's job file and sandbox profile are package data, so it works from any folder after
`pip install`; its report goes to ./reports/ like any other.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from ._config import Config
from ._interrupt import Interrupt
from ._jobs import JobEvents, Settings, run_job
from ._messages import plural
from ._model import Job, Status, Summary
from ._policy import Policy
from ._sandbox import serve
from ._sandbox_profile import Profile

DEMO_TOKEN = "demo-token"  # known only to the embedded sandbox


def demo_config_path() -> Path:
    """The packaged demo job: 300 labelled counters of a fictional agency."""
    return Path(str(resources.files("bulk_enable").joinpath("data/demo.yaml")))


def demo_profile() -> Profile:
    """Latency like the real API, some transient faults, a few counters without access, and two client
    logins the agency represents (one with a guest counter that is the other's own)."""
    text = resources.files("bulk_enable").joinpath("data/demo-profile.yaml").read_text(encoding="utf-8")
    return Profile().updated(yaml.safe_load(text), "demo profile")


async def run_demo(
    config: Config,
    report: Path,
    fresh: bool,
    events: JobEvents,
    interrupt: Interrupt,
    delimiter: str = ",",
) -> tuple[Summary, str]:
    """Run the demo job; return its summary and one line on what the sandbox saw.

    The sandbox knows the demo's counters and every counter of `config`, so a job file of your own
    runs through (its own IDs are enabled; only the demo's staged failures fail)."""
    profile = demo_profile()
    own = [a for a in config.accounts if a.ulogin is None]
    profile.counters = sorted({*profile.counters, *(c.id for a in own for c in a.counters)})
    agency = profile.tokens[DEMO_TOKEN]
    for account in config.accounts:  # a client's counters: reachable with its ulogin, as on Metrica
        if account.ulogin is not None:
            mine = profile.clients.setdefault(account.ulogin, [])
            mine.extend(c.id for c in account.counters)
            represented = profile.represents.setdefault(agency, [])
            represented.extend([account.ulogin] if account.ulogin not in represented else [])
    async with serve(profile) as (sandbox, url):
        settings = Settings(
            config=config,
            tokens={a.name: DEMO_TOKEN for a in config.accounts},
            report=report,
            api_base=url,
            job=Job(),
            policy=Policy(
                timeout=2.0
            ),  # the profile's slow answers take 6 s: the client gives up and retries
            delimiter=delimiter,
            fresh=fresh,
            events=events,
            interrupt=interrupt,
        )
        summary = await run_job(settings)
        stats = sandbox.stats.as_json()
    faults = sum(stats["faults"].values())
    line = (
        f"sandbox {url}: {plural(stats['requests'], 'request')}, "
        f"{plural(faults, 'transient fault')} injected, "
        f"peak {max(stats['peak_in_flight'].values(), default=0)} in flight, "
        f"{plural(stats['repeated_writes'], 'repeated write')}"
    )
    return summary, line


def demo_notes(summary: Summary, staged: bool) -> list[str]:
    """The demo's own closing lines: its failures are staged (the packaged config's, `staged`), and a
    rerun of a finished demo sends nothing, which is the point."""
    notes = []
    if staged and summary.count(Status.FAILED):
        notes.append(
            "(the demo's failures are staged: its agency cannot change 5 of the counters, so it exits 1)"
        )
    if summary.requests == 0 and summary.skipped:
        notes.append("(a rerun sends only what is left: `bulk-enable demo --fresh` runs it all again)")
    return notes
