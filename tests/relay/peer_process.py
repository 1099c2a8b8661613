"""A participant in its own process, so a test can kill it (SIGKILL) like a crashed browser.

Protocol on stdio: prints its offer as one JSON line, reads the answer as one JSON line, then
sends media until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.relay.endpoints import Endpoint


async def main() -> None:
    endpoint = Endpoint("child")
    print(json.dumps({"offer": await endpoint.offer()}), flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    await endpoint.accept(json.loads(line)["answer"])
    await endpoint.wait_connected()
    print(json.dumps({"connected": True}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
