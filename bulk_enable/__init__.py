"""bulk_enable: switch Yandex Metrica's extended call tracking window on many counters at once.

The public API is what the CLI uses; everything else lives in private modules, one concept each:
`_config` (the YAML), `_metrica` (HTTP answers as typed outcomes), `_scheduler` (concurrency, rate,
quotas, retries), `_report` (the CSV and its journal), `_plan` (read-only plans), `_job` (the
jobs), `_sandbox` (a local Metrica stand-in) and `_cli` (the command line).
"""

__version__ = "0.1.0"

from ._config import Account, Config, ConfigError, Counter, load_config, parse_config
from ._job import Settings, Summary, check_job, counters_yaml, run_job
from ._metrica import Answer, MetricaClient, Verdict, check_api_base
from ._report import COLUMNS, Job, Row, read_csv
from ._sandbox import Profile, Sandbox, SandboxThread, serve
from ._scheduler import Policy, Scheduler

__all__ = [
    "COLUMNS",
    "Account",
    "Answer",
    "Config",
    "ConfigError",
    "Counter",
    "Job",
    "MetricaClient",
    "Policy",
    "Profile",
    "Row",
    "Sandbox",
    "SandboxThread",
    "Scheduler",
    "Settings",
    "Summary",
    "Verdict",
    "__version__",
    "check_api_base",
    "check_job",
    "counters_yaml",
    "load_config",
    "parse_config",
    "read_csv",
    "run_job",
    "serve",
]
