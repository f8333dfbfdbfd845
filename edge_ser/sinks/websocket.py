"""WebSocket sink and live dashboard (``listen --serve HOST:PORT [--token T]``; extra ``ws``: websockets).

- ``ws://HOST:PORT/events``: on connect a ``{"type": "hello", model, format, profile, hop, window, labels, input,
  version}`` message, then the recent history (the last `history` events), then every event and status event of
  the stream as one JSON text message each.
- ``http://HOST:PORT/``: the dashboard (``dashboard/`` beside this file: static HTML/JS/CSS, nothing from the
  network), ``/info``: the hello message as JSON.

It binds 127.0.0.1 unless a host is given; any other address needs a token, which every request must then carry
(``?token=T``, ``Authorization: Bearer T``, ``X-Edge-Ser-Token: T``, or the cookie the page sets when it is opened
with ``?token=T``): without it the answer is 401 and nothing is streamed.  A token given on loopback is required too.
A browser's WebSocket from a page of another origin (its ``Origin`` header names another host) is refused (403), so a
web page open on the robot cannot read the loopback stream.

The server runs in its own thread with its own asyncio loop.  `publish` hands the message to that loop and returns;
each client has a bounded queue, and a client too slow to keep up loses its oldest messages (counted, and told in a
``{"type": "status", "state": "overflow", "sink": "websocket", "dropped": N}`` message) -- the audio loop never
waits for a client.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import mimetypes
import socket
import threading
from collections import deque
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from ..errors import UserError
from . import Sink, status_event

log = logging.getLogger("edge_ser.sinks.websocket")

DEFAULT_PORT = 8765
COOKIE = "edge_ser_token"
STATIC = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}


@dataclass
class ServeOptions:
    """The server's limits.

    history: events replayed to a client when it connects (so a page opened mid-stream has a timeline).
    client_queue: messages waiting for one client before its oldest are dropped.
    start_timeout: seconds to wait for the socket to be bound.
    """

    history: int = 240
    client_queue: int = 256
    start_timeout: float = 10.0


def parse_serve(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT``, ``PORT`` or ``HOST`` -> (host, port); no host means 127.0.0.1, no
    port 8765, port 0 a free one."""
    def bad(why: str) -> UserError:
        return UserError(f"--serve {text!r}: {why} (expected HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT})")

    t = text.strip()
    if not t:
        raise bad("empty")
    if t.startswith("["):  # [::1]:8765
        host, sep, rest = t[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise bad("unbalanced brackets")
        port_text = rest[1:] if rest else ""
    elif t.count(":") > 1:  # a bare IPv6 address
        host, port_text = t, ""
    elif t.isdigit():
        host, port_text = "", t
    else:
        host, _, port_text = t.partition(":")
    host = host or "127.0.0.1"
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise bad(f"port {port_text!r} is not a number from 0 to 65535")
        port = int(port_text)
    else:
        port = DEFAULT_PORT
    if any(c.isspace() or c in "/?#@" for c in host):
        raise bad(f"host {host!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True when every address the host name stands for is a loopback address (an unknown name: a UserError)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserError(f"--serve: cannot resolve host {host!r}: {exc.strerror or exc}") from None
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def check_serve(text: str, token: Optional[str]) -> tuple[str, int]:
    """The address of ``--serve TEXT`` with ``--token``: a UserError for a bad address, an empty token, a
    non-loopback address without a token, or websockets missing."""
    host, port = parse_serve(text)
    if token is not None and not token.strip():
        raise UserError("--token must not be empty")
    if not is_loopback(host) and token is None:
        raise UserError(f"--serve {host}: binding a non-loopback address needs --token (anyone on the network "
                        "could watch the stream otherwise); or serve 127.0.0.1")
    try:
        import websockets.asyncio.server  # noqa: F401
    except ImportError:
        raise UserError("--serve needs websockets: pip install 'edge-ser[ws]'") from None
    return host, port


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("dashboard", name).read_bytes()


class WebSocketSink(Sink):
    """The server (see the module's docstring)."""

    name = "websocket"

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: Optional[str] = None,
                 info: dict | None = None, options: ServeOptions = ServeOptions()):
        check_serve(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", token)
        from .. import __version__
        self.host, self.port, self.token, self.options = host, port, token, options
        self.info = {"type": "hello", **dict(info or {}), "version": __version__}
        self.on_status = lambda status: None
        self.dropped = self.clients_total = self.rejected = 0
        self._history: deque = deque(maxlen=options.history)
        self._clients: dict = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edge-ser-websocket", daemon=True)
        self._files = {path: _static(name) for path, name in STATIC.items()}  # fail now if the package lacks them

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(self.options.start_timeout):
            raise UserError(f"--serve {self.host}:{self.port}: the server did not start in "
                            f"{self.options.start_timeout:g} s")
        if self._error is not None:
            exc = self._error
            why = getattr(exc, "strerror", None) or str(exc)
            raise UserError(f"--serve {self.host}:{self.port}: cannot listen there: {why}")
        log.info("serving the dashboard at %s (events: ws://%s:%d/events)", self.url, self.host, self.port)

    # -- any thread --------------------------------------------------------------------------------------------
    def publish(self, event: dict) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._broadcast, json.dumps(event, default=str))
        except RuntimeError:  # the loop is closing
            pass

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        self._thread.join(timeout=3.0)
        if self.dropped:
            log.info("websocket: %d messages dropped for slow clients", self.dropped)  # in the summary too

    def summary(self) -> str:
        return (f"websocket {self.url}: {self.clients_total} clients, {self.rejected} refused, "
                f"{self.dropped} dropped")

    # -- the server's loop -------------------------------------------------------------------------------------
    def _broadcast(self, text: str) -> None:
        self._history.append(text)
        for client in self._clients.values():
            client.put(text)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as exc:  # bind errors end up in start()
            if not self._ready.is_set():
                self._error = exc
            else:
                log.warning("websocket server stopped: %s", exc)
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self, loop) -> None:
        from websockets.asyncio.server import serve
        self._stop = asyncio.Event()
        server = await serve(self._handle, self.host, self.port, process_request=self._process_request,
                             server_header=None, compression=None, ping_interval=10, ping_timeout=10,
                             close_timeout=1, max_size=4096)
        self.port = server.sockets[0].getsockname()[1]  # port 0: the one the system chose
        self._loop = loop
        self._ready.set()
        await self._stop.wait()
        server.close(close_connections=True)  # closing handshakes, 1 s at most each ...
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=1.5)
        except asyncio.TimeoutError:  # ... a client that reads nothing gets no handshake: cut it off
            for client in list(self._clients.values()):
                client.ws.transport.abort()
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=0.5)
            except asyncio.TimeoutError:
                pass
        for task in asyncio.all_tasks(loop):
            if task is not asyncio.current_task():
                task.cancel()

    def _authorised(self, request) -> bool:
        if self.token is None:
            return True
        given = parse_qs(urlsplit(request.path).query).get("token", [None])[-1]
        auth = request.headers.get("Authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None:
            given = request.headers.get("X-Edge-Ser-Token")
        if given is None:  # the page's own requests (app.js, style.css) carry the cookie set with the page
            cookies = SimpleCookie()
            try:
                cookies.load(request.headers.get("Cookie", ""))
            except CookieError:
                pass
            given = cookies[COOKIE].value if COOKIE in cookies else None
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def _process_request(self, connection, request):
        from websockets.datastructures import Headers
        from websockets.http11 import Response
        path = urlsplit(request.path).path
        if not self._authorised(request):
            self.rejected += 1
            log.info("websocket: refused %s %s (missing or wrong token)", connection.remote_address, path)
            return Response(401, "Unauthorized", Headers([("WWW-Authenticate", 'Bearer realm="edge-ser"'),
                                                          ("Content-Type", "text/plain; charset=utf-8")]),
                            b"401 Unauthorized: this edge-ser server needs ?token=... or Authorization: Bearer\n")
        if path == "/events":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("Host", "").lower():
                # a page from another site open in a browser on this machine must not read the stream
                self.rejected += 1
                log.info("websocket: refused a connection from the page of %s", origin)
                return connection.respond(403, "403 Forbidden: a page of another origin\n")
            return None  # on to the WebSocket handshake
        if path == "/info":
            body, kind = json.dumps(self.info, default=str).encode(), "application/json"
        elif path in self._files:
            body = self._files[path]
            kind = mimetypes.guess_type(STATIC[path])[0] or "application/octet-stream"
            kind += "; charset=utf-8" if kind.startswith("text/") or kind.endswith("javascript") else ""
        else:
            return connection.respond(404, "not found\n")
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
                           ("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; "
                            "img-src 'self' data:")])
        if self.token is not None and path in ("/", "/index.html"):
            headers["Set-Cookie"] = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        return Response(200, "OK", headers, body)

    async def _handle(self, ws) -> None:
        client = _Client(self.options.client_queue, self, ws)
        self._clients[id(client)] = client
        self.clients_total += 1
        try:
            for text in [json.dumps(self.info, default=str), *self._history]:
                client.put(text)
            while True:
                text = await client.queue.get()
                if client.dropped_unsent:
                    n, client.dropped_unsent = client.dropped_unsent, 0
                    await ws.send(json.dumps(status_event(
                        "overflow", sink="websocket", dropped=n, dropped_total=client.dropped,
                        message=f"this client was too slow: {n} messages dropped")))
                await ws.send(text)
        except Exception:  # ConnectionClosed and friends: the client has gone
            pass
        finally:
            self._clients.pop(id(client), None)


class _Client:
    """One connected client's bounded queue: full, it drops its oldest message."""

    def __init__(self, size: int, server: WebSocketSink, ws):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=size)
        self.server, self.ws = server, ws
        self.dropped = self.dropped_unsent = 0

    def put(self, text: str) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            self.dropped_unsent += 1
            self.server.dropped += 1
        self.queue.put_nowait(text)
