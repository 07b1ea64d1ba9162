"""The baseline: the same job done the way people do it today, one counter after another.

Same HTTP client (`MetricaClient` on one aiohttp session), same sandbox; no pool, no scheduler.
Usage: python -m bench.sequential API_BASE N   (token in YANDEX_METRICA_TOKEN); prints seconds.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from bulk_enable import Verdict, Window
from bulk_enable._metrica import MetricaClient, open_session


async def main(api_base: str, n: int) -> float:
    token = os.environ["YANDEX_METRICA_TOKEN"]
    async with open_session(30.0, 1) as session:
        client = MetricaClient(session, api_base, token)
        started = time.monotonic()
        for counter_id in range(1, n + 1):
            answer, _ = await client.switch_window(counter_id, Window.CALLS, enable=True)
            if answer.verdict is not Verdict.DONE:
                raise SystemExit(f"counter {counter_id}: {answer}")
        return time.monotonic() - started


if __name__ == "__main__":
    print(f"{asyncio.run(main(sys.argv[1], int(sys.argv[2]))):.3f}")
