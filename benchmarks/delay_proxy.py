"""A TCP proxy that adds a fixed delay in each direction (this kernel has no netem).

Every chunk read from one side is written to the other ``delay`` seconds later,
in order; throughput is not limited, only latency added. Run it in its own
process so the contenders' event loops are not disturbed::

    python benchmarks/delay_proxy.py --listen 127.0.0.1:6543 --target 127.0.0.1:5432 --delay 0.001
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                break
    except OSError:
        queue.put_nowait((0.0, b""))
    await sender


async def serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pump(client_reader, server_writer, delay),
            _pump(server_reader, client_writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, *listen)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:6543")
    parser.add_argument("--target", default="127.0.0.1:5432")
    parser.add_argument("--delay", type=float, default=0.001, help="seconds added each way")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    thost, tport = args.target.rsplit(":", 1)
    asyncio.run(serve((host, int(port)), (thost, int(tport)), args.delay))


if __name__ == "__main__":
    main()
