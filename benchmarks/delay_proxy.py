"""A TCP proxy that adds a fixed delay in each direction (this kernel has no netem).

Every chunk read from one side is written to the other ``delay`` seconds after
it arrived, in order; throughput is not limited, only latency added. Each
direction of each connection is a small delay line of two threads (one reads
and time-stamps, one sleeps until the stamp and writes): ``time.sleep`` keeps
the added delay within a few tens of microseconds of the target, where an
event loop's millisecond timer granularity adds up to a whole extra
millisecond per hop. Run it in its own process so the contenders are not
disturbed::

    python benchmarks/delay_proxy.py --listen 127.0.0.1:6543 --target 127.0.0.1:5432 --delay 0.001

``--check`` measures the round trip a ``SELECT 1`` takes through the proxy and
directly, and prints what the proxy adds.
"""

from __future__ import annotations

import argparse
import queue
import socket
import threading
import time

_STOP = b""


def _delay_line(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Copy ``source`` to ``target``, each chunk ``delay`` seconds after it was read."""
    pending: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def deliver() -> None:
        while True:
            due, data = pending.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                target.sendall(data)
            except OSError:
                break
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    sender = threading.Thread(target=deliver, daemon=True)
    sender.start()
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            pending.put((time.monotonic() + delay, data))
    except OSError:
        pass
    pending.put((0.0, _STOP))
    sender.join()


def _serve_connection(client: socket.socket, target: tuple[str, int], delay: float) -> None:
    try:
        server = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    upstream = threading.Thread(target=_delay_line, args=(client, server, delay), daemon=True)
    upstream.start()
    _delay_line(server, client, delay)
    upstream.join()
    client.close()
    server.close()


def serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
    """Accept connections on ``listen`` and relay each to ``target`` with the delay."""
    listener = socket.create_server(listen, backlog=512)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve_connection, args=(client, target, delay), daemon=True).start()


def check(listen: tuple[str, int], target: tuple[str, int], rounds: int = 300) -> None:
    """Print the median round trip of ``SELECT 1`` directly and through the proxy."""
    import asyncio
    import statistics

    import asyncpg

    async def median_rtt(host: str, port: int) -> float:
        conn = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres")
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            await conn.execute("SELECT 1")
            times.append(time.perf_counter() - started)
        await conn.close()
        return statistics.median(times) * 1000

    direct = asyncio.run(median_rtt(*target))
    proxied = asyncio.run(median_rtt(*listen))
    print(f"round trip: direct {direct:.3f} ms, through the proxy {proxied:.3f} ms, "
          f"added {proxied - direct:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:6543")
    parser.add_argument("--target", default="127.0.0.1:5432")
    parser.add_argument("--delay", type=float, default=0.001, help="seconds added each way")
    parser.add_argument("--check", action="store_true", help="measure a running proxy and exit")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    thost, tport = args.target.rsplit(":", 1)
    if args.check:
        check((host, int(port)), (thost, int(tport)))
        return
    serve((host, int(port)), (thost, int(tport)), args.delay)


if __name__ == "__main__":
    main()
