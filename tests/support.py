"""Helpers shared by the tests and the benchmarks: sandboxes, other servers, job files, reading reports
back."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from bulk_enable import Profile, SandboxThread
from bulk_enable._render import is_xlsx
from bulk_enable._report import journal_path, read_journal


def sandbox_thread(token: str, known: str, **settings: Any) -> SandboxThread:
    """A sandbox (not started yet: use it in `with`) that accepts `token` and knows the counters
    `known` (e.g. "1-3000"), unless `settings` say otherwise."""
    settings.setdefault("tokens", {token: "agency"})
    settings.setdefault("counters", known)
    return SandboxThread(Profile().updated(settings))


@contextlib.contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """Serve an aiohttp app (a hostile or foreign server) on a loopback port in a thread; yield its URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def web_server(status: int, page: str) -> Iterator[tuple[str, list[str]]]:
    """A web server that is not the API (a wrong --api-base): whatever it is asked, it answers
    `status` with the HTML `page`; yields its URL and the paths it was asked for."""
    hits: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=status, text=page, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    with serve_app(app) as url:
        yield url, hits


def write_config(path: Path, ids: range | list[int]) -> Path:
    """A bare-list YAML job of these IDs."""
    path.write_text("".join(f"- {i}\n" for i in ids), encoding="utf-8")
    return path


def symlink_maker(name: str, target: str) -> Callable[[Path], Path]:
    """Makes `name` in a folder, a symlink to `target` (from that folder), and returns its path."""

    def make(folder: Path) -> Path:
        (folder / name).symlink_to(target)
        return folder / name

    return make


def fifo_maker(name: str) -> Callable[[Path], Path]:
    """Makes `name` in a folder, a FIFO, and returns its path."""

    def make(folder: Path) -> Path:
        os.mkfifo(folder / name)
        return folder / name

    return make


def read_report(path: Path) -> list[dict[str, str]]:
    """A report's rows as text cells (CSV of any delimiter, or xlsx), whatever wrote it."""
    if is_xlsx(path):
        import openpyxl

        sheet = openpyxl.load_workbook(path, read_only=True)["Report"]
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        found = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
        for row in found:  # the workbook shows statuses in words, with the code in parentheses
            row["status"] = row["status"].rsplit("(", 1)[-1].rstrip(")")
        return found
    text = path.read_text(encoding="utf-8-sig")
    delimiter = ";" if text.split("\n", 1)[0].count(";") > 1 else ","
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def statuses(report: Path) -> dict[int, str]:
    """counter ID -> status, from a report file."""
    return {int(r["counter_id"]): r["status"] for r in read_report(report)}


def journal_statuses(report: Path) -> dict[int, str]:
    """counter ID -> status, from a report's journal."""
    _, rows = read_journal(journal_path(report))
    return {cid: str(row.status) for cid, row in rows.items()}
