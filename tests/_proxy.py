"""A TCP proxy on 127.0.0.1 that a test can silence, for faults of a dead network.

It forwards every connection to a target on loopback. `silence()` stops forwarding in
both directions and keeps the sockets open, as a network that drops packets does;
`resume()` forwards again for new connections; `cut()` closes every open connection.
`hold()` keeps what comes in, on every connection, until `let_through()` sends it on, as a
slow network does. `mute_requests()` stops what the clients of the connections open now send
from reaching the target, for good, while its answers and new connections flow: a half-dead
path. `keep_open()` forwards what comes in but not the end of a connection: the
other side learns what its peer sent last, not yet that the peer has gone.

`pipe` is one direction of a plain forward, for a test's own server; `serving` runs such a
server in a thread of its own, for a test that calls the command line in its own thread, and
`peer_answering` is one that answers a startup message with bytes of the test's choosing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Proxy", "peer_answering", "pipe", "proxied", "serving", "through"]

LOOPBACK = "127.0.0.1"


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy `reader` to `writer` until its end, then close `writer`."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.contextmanager
def serving(handle: Handler, delay: float = 0.0) -> Iterator[int]:
    """A port on 127.0.0.1 served by `handle` in a thread; closed until `delay` has passed.

    Without a delay it is listening once given. With one, the port is chosen free first, and
    another program could take it meanwhile: a test of a late server takes that chance.
    """
    port = 0
    if delay:
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    listening = threading.Event()
    bound: list[int] = []

    async def serve() -> None:
        await asyncio.sleep(delay)
        async with await asyncio.start_server(handle, LOOPBACK, port) as server:
            bound.append(server.sockets[0].getsockname()[1])
            listening.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        if not delay and not listening.wait(10):
            raise TimeoutError("the test's server did not start listening")
        yield port or bound[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def peer_answering(
    reply: bytes, met: list[None] | None = None
) -> contextlib.AbstractContextManager[int]:
    """A port whose peer answers a startup message with `reply` and hangs up; `met` counts them."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if met is not None:
            met.append(None)
        await reader.read(1024)
        writer.write(reply)
        await writer.drain()
        writer.close()

    return serving(answer)


class Proxy:
    """Forwards 127.0.0.1:port to a loopback target until told otherwise."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.silent = False
        self.kept_open = False
        self.hanging_up = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._requests: list[asyncio.Event] = []  # one per connection: set, its client is muted

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def silence(self) -> None:
        """Stop forwarding anything, on open and new connections alike."""
        self.silent = True

    def hang_up(self) -> None:
        """Close each new connection as soon as it is accepted, before a byte of it is read."""
        self.hanging_up = True

    def resume(self) -> None:
        """Forward again; connections that met the silence stay dead."""
        self.silent = False

    def hold(self) -> None:
        """Keep what comes in, in both directions, until `let_through()`."""
        self._flowing.clear()

    def let_through(self) -> None:
        """Send on what was held, and forward again."""
        self._flowing.set()

    def mute_requests(self) -> None:
        """Forward nothing more that the clients of the open connections send; answers flow."""
        for muted in self._requests:
            muted.set()

    def keep_open(self) -> None:
        """Forward no end of a connection from now on: each side's socket stays open."""
        self.kept_open = True

    def cut(self) -> None:
        """Close every open connection at once."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        """Stop listening and close everything."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.hanging_up:
            writer.transport.abort()
            return
        self._writers.append(writer)
        if self.silent:
            return  # accepted, then nothing: the peer waits forever
        try:
            target_reader, target_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.append(target_writer)
        muted = asyncio.Event()
        self._requests.append(muted)
        for source, sink, mute in ((reader, target_writer, muted), (target_reader, writer, None)):
            task = asyncio.create_task(self._pump(source, sink, mute))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        muted: asyncio.Event | None = None,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                if self.silent or (muted is not None and muted.is_set()):
                    await asyncio.Event().wait()  # hold what came in; send nothing, ever
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        if self.kept_open:
            return  # `cut()` or `close()` ends it
        with contextlib.suppress(OSError):
            sink.close()


def through(url: str, port: int) -> str:
    """The same PostgreSQL URL, on 127.0.0.1 at `port`."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{LOOPBACK}:{port}"))


@contextlib.asynccontextmanager
async def proxied(url: str) -> AsyncIterator[tuple[Proxy, str]]:
    """A proxy in front of the server of `url`, and the URL that goes through it."""
    parts = urlsplit(url)
    if parts.hostname not in {LOOPBACK, "localhost"}:
        msg = f"fault tests only target loopback, not {parts.hostname}"
        raise ValueError(msg)
    proxy = Proxy(parts.port or 5432)
    await proxy.start()
    try:
        yield proxy, through(url, proxy.port)
    finally:
        await proxy.close()
