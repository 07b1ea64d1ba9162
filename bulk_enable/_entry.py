"""The process's entry point, kept tiny: from its first instruction, Ctrl-C, SIGTERM and SIGHUP end
the process with one line and exit 130 (and, with --json, one JSON object), even while the rest of
the tool is still loading."""

from __future__ import annotations

import sys


def main() -> int:
    """`bulk-enable ...` and `python -m bulk_enable ...`."""
    from ._signals import end_like_ctrl_c

    end_like_ctrl_c()
    argv = sys.argv[1:]
    try:
        from ._cli import main as cli_main

        return cli_main(argv)
    except KeyboardInterrupt:  # while the command line was loading: `_cli.main` handles it after
        from ._streams import fail, standard_streams

        standard_streams()
        return fail(argv, 130, ["interrupted"])
