"""A TCP proxy on loopback that can drop its connections, refuse some, never answer, or stall one way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import URL


class Proxy:
    """Forward ``127.0.0.1:<port>`` to a server, with faults on demand.

    :param silent: accept connections and never answer (nor forward).
    :param refuse_first: close this many new connections at once, then forward.
    """

    def __init__(self, host: str, port: int, *, silent: bool = False, refuse_first: int = 0) -> None:
        self._target = (host, port)
        self.silent = silent
        self.refuse_first = refuse_first
        self.accepted = 0
        self._stalled_up_to = 0  # connections accepted up to this count lose their answers
        self._drop_on: bytes | None = None
        self._cut: tuple[bytes | None, bytes, bool] | None = None
        self._answer_lost: set[int] = set()  # connections whose next answer is lost
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, url: URL) -> URL:
        """``url`` pointed at the proxy."""
        return url.set(host="127.0.0.1", port=self.port)

    def stall(self) -> None:
        """Stop delivering the server's answers on the open connections, as a one-way fault would.

        Their statements still reach the server; nothing reaches the client
        any more, not even the server closing the connection. Connections
        opened afterwards work (a new flow through a stuck NAT or proxy).
        """
        self._stalled_up_to = self.accepted

    def go_silent(self) -> None:
        """From now on forward nothing, either way, on open and new connections, closing none:
        the server (or the network to it) stops answering altogether."""
        self.silent = True

    def drop_on(self, request: bytes) -> None:
        """Abort the first connection whose client sends ``request`` (before it reaches the server)."""
        self._drop_on = request

    def cut_at(self, part: bytes, *, after: bytes, reaches: bool) -> None:
        """Cut the first connection whose client sends ``part`` in a request after one holding ``after``.

        With ``reaches``, the request reaches the server and the server's answer
        is what gets lost (the connection is aborted when the answer comes);
        without, the request is lost. Either way the client sees its connection
        reset while it waits for the answer.
        """
        self._cut = (after, part, reaches)

    def drop_all(self) -> int:
        """Abort every open connection, as a network reset or a server restart would."""
        writers, self._writers = set(self._writers), set()
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        if self.refuse_first > 0:
            self.refuse_first -= 1
            writer.transport.abort()
            return
        self._writers.add(writer)
        if self.silent:
            with contextlib.suppress(Exception):
                await reader.read()  # until the client gives up
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)

        def stalled(answers: bool) -> bool:
            return answers and number <= self._stalled_up_to

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, answers: bool) -> None:
            try:
                while data := await src.read(65536):
                    if stalled(answers) or self.silent:
                        continue  # lost on the way
                    if not answers and self._drop_on is not None and self._drop_on in data:
                        self._drop_on = None
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    cut = self._cut
                    if not answers and cut is not None and cut[0] is None and cut[1] in data:
                        self._cut = None
                        if not cut[2]:
                            writer.transport.abort()
                            up_writer.transport.abort()
                            return
                        self._answer_lost.add(number)
                    if not answers and cut is not None and cut[0] is not None and cut[0] in data:
                        self._cut = (None, cut[1], cut[2])  # armed: the next request holding the part
                    if answers and number in self._answer_lost:  # the server answered: lose it
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    dst.write(data)
                    await dst.drain()
            except Exception:
                pass
            finally:
                if not stalled(answers) and not self.silent:
                    dst.transport.abort()

        for task in (pump(reader, up_writer, False), pump(up_reader, writer, True)):
            t = asyncio.ensure_future(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)


@asynccontextmanager
async def proxy_to(url: URL, **faults: object) -> AsyncIterator[Proxy]:
    """Run a :class:`Proxy` to ``url``'s server for the block."""
    proxy = Proxy(url.host or "127.0.0.1", url.port or (5432 if "postgres" in url.drivername else 3306),
                  **faults)  # type: ignore[arg-type]
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
