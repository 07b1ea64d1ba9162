"""`bulk-enable sandbox`: the local Metrica stand-in as a command. It listens on loopback unless told
`--expose` (it has no authentication), prints its URL first on stdout for scripts, and says on
stderr which tokens it takes and a command to try that works as printed."""

from __future__ import annotations

import argparse
import logging

from ._errors import UsageError
from ._model import TOKEN_ENV, ExitCode
from ._options import profile_overrides

log = logging.getLogger("bulk_enable")


def serve_sandbox(args: argparse.Namespace) -> int:
    """`bulk-enable sandbox`: serve until Ctrl-C; the URL first on stdout, the rest on stderr."""
    import asyncio

    from ._metrica import is_loopback
    from ._sandbox import serve_forever
    from ._sandbox_profile import Profile

    if not is_loopback(args.host) and not args.expose:
        raise UsageError(
            f"sandbox: --host {args.host} lets other machines reach it, and the sandbox has no "
            "authentication (anyone there can revoke its tokens or reset its day): add --expose if that "
            "is what you want"
        )
    base = Profile.from_yaml(args.profile) if args.profile else Profile()
    profile = base.updated(profile_overrides(vars(args)))
    try:
        asyncio.run(serve_forever(profile, args.host, args.port, _sandbox_ready))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise UsageError(
            f"sandbox: cannot listen on {args.host}:{args.port} ({e.strerror}): try --port 0"
        ) from None
    return ExitCode.OK


def _sandbox_ready(url: str, tokens: dict[str, str]) -> None:
    print(url, flush=True)  # the first line of stdout: scripts read the URL from it
    token = next(iter(tokens), "sandbox-token")
    log.warning(
        "sandbox: serving the Metrica API at %s (stats at %s/_sandbox/stats); Ctrl-C stops it", url, url
    )
    log.warning(
        "sandbox: tokens it accepts: %s", ", ".join(f"{t} (login {who})" for t, who in tokens.items())
    )
    try_it = f"{TOKEN_ENV}={token} bulk-enable"
    log.warning(
        "sandbox: try: %s counters --api-base %s > sandbox.yaml && %s run sandbox.yaml --api-base %s",
        try_it,
        url,
        try_it,
        url,
    )
