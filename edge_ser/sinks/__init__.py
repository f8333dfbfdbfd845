"""Where ``listen`` sends its events besides stdout: MQTT (`mqtt`), a WebSocket stream with a live dashboard
(`websocket`) and ROS 2 topics (`ros2`).

Every sink takes events as the dicts of the JSON stream (``t, ts, window, speech, label, emotion, intensity, ...``)
and status events (``{"type": "status", "state": ...}``), so it depends on nothing but those fields::

    sink.publish(event_dict)   # one hop's event; never blocks the audio loop, never raises for a network fault
    sink.status(status_dict)   # a status event of the stream (device lost, a sink reconnecting, ...)
    sink.close()               # flush what can be flushed within a short time, say goodbye, stop its threads

`open_sinks(SinkOptions(...), info)` (``info``: e.g. `edge_ser.Recognizer.info()`) checks the options (a bad URL or address is a `UserError` before anything is
started) and returns a `FanOut` over the sinks asked for.  Sinks report their own faults (a broker gone, a client
too slow) as status events through the fan-out: `FanOut.drain()` hands them to the caller's thread, which prints
them in the JSON stream, and they are passed on to the other sinks.
"""
from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

log = logging.getLogger("edge_ser.sinks")

StatusCallback = Callable[[dict], None]


class Sink:
    """The interface every sink implements (see the module's docstring).  ``name`` appears in status events."""

    name = "sink"

    def publish(self, event: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def status(self, status: dict) -> None:
        """A status event of the stream; by default sent like an event."""
        self.publish(status)

    def close(self) -> None:
        pass

    def summary(self) -> str:
        """One short phrase for listen's summary line ('' for nothing to say)."""
        return ""


def status_event(state: str, **fields) -> dict:
    """A status event as the JSON stream carries it: ``{"type": "status", "state": ..., "ts": ..., **fields}``."""
    return {"type": "status", "state": state, "ts": round(time.time(), 3), **fields}


@dataclass
class SinkOptions:
    """What ``listen`` was asked to send where.

    mqtt: ``mqtt://[user:pass@]host[:port]/prefix`` (``mqtts://`` for TLS), or None.
    serve: ``HOST:PORT`` (``:PORT`` or ``PORT`` alone bind 127.0.0.1; port 0 picks a free one), or None.
    token: required by the WebSocket server from every client (query ``?token=`` or header); mandatory when
        ``serve`` binds anything but loopback.
    ros2: publish on ROS 2 topics (needs rclpy).
    """

    mqtt: Optional[str] = None
    serve: Optional[str] = None
    token: Optional[str] = None
    ros2: bool = False

    def check(self) -> None:
        """Raise a UserError for a bad option, before anything is loaded or started (a missing library included)."""
        from ..errors import UserError
        if self.token is not None and not self.serve:
            raise UserError("--token is for --serve (the WebSocket server's clients)")
        if self.mqtt:
            from .mqtt import _paho, parse_mqtt_url
            parse_mqtt_url(self.mqtt)
            _paho()
        if self.serve:
            from .websocket import check_serve
            check_serve(self.serve, self.token)
        if self.ros2:
            from .ros2 import _rclpy
            _rclpy()


class FanOut(Sink):
    """Sends every event and status to each sink.  A sink that raises is logged and kept (a fault in one sink
    never stops listen or the others); status events the sinks raise themselves, from their own threads, wait in
    a queue until `drain` hands them to the caller."""

    name = "fanout"

    def __init__(self, sinks: Iterable[Sink] = ()):
        self.sinks: List[Sink] = list(sinks)
        self._pending: "queue.SimpleQueue[tuple[Sink | None, dict]]" = queue.SimpleQueue()

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def report(self, origin: Sink | None) -> StatusCallback:
        """The callback a sink calls with its own status events (any thread)."""
        return lambda status: self._pending.put((origin, status))

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def publish(self, event: dict) -> None:
        for sink in self.sinks:
            self._call(sink, sink.publish, event)

    def status(self, status: dict, origin: Sink | None = None) -> None:
        for sink in self.sinks:
            if sink is not origin:
                self._call(sink, sink.status, status)

    def feed(self, item) -> None:
        """An Event or StatusEvent (anything with ``to_dict()``) or its dict, sent as an event or a status: the
        callback for `edge_ser.Recognizer.subscribe`."""
        d = item.to_dict() if hasattr(item, "to_dict") else item
        if d.get("type") == "status":
            self.status(d)
        else:
            self.publish(d)

    def drain(self) -> List[dict]:
        """The status events the sinks raised since the last call (each already passed on to the other sinks)."""
        out = []
        while True:
            try:
                origin, status = self._pending.get_nowait()
            except queue.Empty:
                return out
            self.status(status, origin=origin)
            out.append(status)

    def close(self) -> None:
        for sink in reversed(self.sinks):
            self._call(sink, sink.close)

    def summary(self) -> str:
        return "; ".join(s for s in (sink.summary() for sink in self.sinks) if s)

    @staticmethod
    def _call(sink: Sink, method, *args) -> None:
        try:
            method(*args)
        except Exception as exc:  # a sink's bug or fault must not end the stream
            log.warning("%s sink: %s: %s", sink.name, type(exc).__name__, exc)


def open_sinks(options: SinkOptions, info: dict | None = None) -> FanOut:
    """Check the options and start the sinks they ask for.  ``info`` describes the stream (``model, format,
    profile, hop, window, labels, input``): the dashboard shows it, ROS 2 sets its node parameters from it.
    A bad option is a `UserError` (nothing is left running); a broker that cannot be reached is not (it is a status
    event, and the sink keeps trying)."""
    info = dict(info or {})
    for short, long in (("hop", "hop_seconds"), ("window", "window_seconds")):  # Recognizer.info() names
        if info.get(short) is None and info.get(long) is not None:
            info[short] = info[long]
    options.check()
    fan = FanOut()
    try:
        if options.mqtt:
            from .mqtt import MqttSink, parse_mqtt_url
            settings = parse_mqtt_url(options.mqtt)
            sink = MqttSink(settings, info=info)
            sink.on_status = fan.report(sink)
            sink.start()
            fan.add(sink)
        if options.serve:
            from .websocket import WebSocketSink, parse_serve
            host, port = parse_serve(options.serve)
            sink = WebSocketSink(host, port, token=options.token, info=info)
            sink.on_status = fan.report(sink)
            sink.start()
            fan.add(sink)
        if options.ros2:
            from .ros2 import Ros2Sink
            sink = Ros2Sink(info=info)
            sink.on_status = fan.report(sink)
            sink.start()
            fan.add(sink)
    except BaseException:
        fan.close()
        raise
    return fan
