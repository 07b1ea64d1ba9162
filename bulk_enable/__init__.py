"""bulk_enable: switch Yandex Metrica's extended call tracking window on many counters at once.

The public API is re-exported here; the machinery lives in private modules, one concept each:
`_model` (counters, jobs, rows, statuses, exit codes), `_errors` (the one base of every error a
user can cause), `_config`, `_config_tables` and `_config_yaml` (the job file), `_tokens`,
`_untrusted` (network text made safe), `_metrica` (HTTP answers as typed outcomes), `_policy`,
`_rate`, `_slots` and `_scheduler` (concurrency, rate, quotas, retries), `_report`, `_render` and
`_job_files` (journal, report files, where a job lives), `_workbook` and `_outlook` (Summary sheets,
workbooks per client, days left), `_plan` (read-only plans), `_portfolio` (an agency's logins and
clients), `_jobs` (run, check, status, counters), `_messages` (words for people), `_sandbox` and
`_sandbox_profile` (a local Metrica stand-in and its settings), and the command line: `_options`,
`_parser`, `_streams`, `_signals`, `_entry`, `_cli`.

Names are imported on first use, so `bulk-enable --help` does not load the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._answer import Answer, Verdict
    from ._config import Account, Config, ConfigError, load_config
    from ._config_yaml import parse_config
    from ._errors import UserError
    from ._interrupt import Interrupt
    from ._jobs import Settings, check_job, run_job, status_job
    from ._metrica import MetricaClient, check_api_base
    from ._model import (
        COLUMNS,
        Command,
        Counter,
        ExitCode,
        Job,
        Row,
        Status,
        Stop,
        StopCause,
        Summary,
        Window,
    )
    from ._policy import Policy
    from ._portfolio import list_counters
    from ._report import read_journal, render_again
    from ._sandbox import Sandbox, SandboxThread, serve
    from ._sandbox_profile import Profile
    from ._scheduler import Events, NotSent, NotSentReason, Scheduler, Sent

_EXPORTS = {
    "Answer": "_answer",
    "Verdict": "_answer",
    "Account": "_config",
    "Config": "_config",
    "ConfigError": "_config",
    "load_config": "_config",
    "parse_config": "_config_yaml",
    "UserError": "_errors",
    "Interrupt": "_interrupt",
    "Settings": "_jobs",
    "check_job": "_jobs",
    "list_counters": "_portfolio",
    "run_job": "_jobs",
    "status_job": "_jobs",
    "MetricaClient": "_metrica",
    "check_api_base": "_metrica",
    "COLUMNS": "_model",
    "Command": "_model",
    "Counter": "_model",
    "ExitCode": "_model",
    "Job": "_model",
    "Row": "_model",
    "Status": "_model",
    "Stop": "_model",
    "StopCause": "_model",
    "Summary": "_model",
    "Window": "_model",
    "Policy": "_policy",
    "read_journal": "_report",
    "render_again": "_report",
    "Profile": "_sandbox_profile",
    "Sandbox": "_sandbox",
    "SandboxThread": "_sandbox",
    "serve": "_sandbox",
    "Events": "_scheduler",
    "NotSent": "_scheduler",
    "NotSentReason": "_scheduler",
    "Scheduler": "_scheduler",
    "Sent": "_scheduler",
}

__all__ = [
    "COLUMNS",
    "Account",
    "Answer",
    "Command",
    "Config",
    "ConfigError",
    "Counter",
    "Events",
    "ExitCode",
    "Interrupt",
    "Job",
    "MetricaClient",
    "NotSent",
    "NotSentReason",
    "Policy",
    "Profile",
    "Row",
    "Sandbox",
    "SandboxThread",
    "Scheduler",
    "Sent",
    "Settings",
    "Status",
    "Stop",
    "StopCause",
    "Summary",
    "UserError",
    "Verdict",
    "Window",
    "__version__",
    "check_api_base",
    "check_job",
    "list_counters",
    "load_config",
    "parse_config",
    "read_journal",
    "render_again",
    "run_job",
    "serve",
    "status_job",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("bulk-enable")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bulk_enable' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
