"""MQTT sink (``listen --mqtt mqtt://[user:pass@]host[:port]/prefix``; extra ``mqtt``: paho-mqtt).

Topics, under the URL's prefix (default ``edge_ser``):

- ``PREFIX/event``: every event of the JSON stream (and its status events), QoS 1, not retained;
- ``PREFIX/state``: the current emotion, retained, published when speech/label change:
  ``{"speech", "emotion", "intensity", "label", "confidence", "t", "ts"}``;
- ``PREFIX/status``: ``online`` (retained) while connected, ``offline`` on close and as the last will;
- Home Assistant discovery (retained): ``homeassistant/sensor/NODE/{emotion,intensity,confidence}/config`` and
  ``homeassistant/binary_sensor/NODE/speech/config``, all reading ``PREFIX/state``, so the sensors appear without
  configuration.  ``?discovery=PREFIX`` changes the discovery prefix, ``?discovery=off`` leaves it out.

A broker that is down, or goes away, never stops listen: events wait in a bounded queue (the oldest are dropped
and counted when it is full), paho reconnects with exponential backoff, and each outage and recovery is a status
event (``{"type": "status", "state": "reconnecting" | "reconnected", "sink": "mqtt", ...}``).  On (re)connect
the status, the discovery configs and the current state are published again.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import UserError
from . import Sink, status_event

log = logging.getLogger("edge_ser.sinks.mqtt")

SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}
QUERY_KEYS = ("discovery", "client_id", "node_id", "qos")


@dataclass
class MqttSettings:
    """Where and how to publish.

    host, port: the broker (port default 1883, 8883 for mqtts://).
    prefix: topic prefix (the URL's path; default ``edge_ser``).
    username, password: from the URL's ``user:pass@`` (percent-encoded), or None.
    tls: ``mqtts://``: TLS with the system's CA certificates.
    discovery_prefix: Home Assistant's discovery prefix (``homeassistant``), or None for no discovery.
    node_id: the discovery node id and unique-id stem (default ``edge_ser_`` + the prefix, sanitised).
    client_id: MQTT client id (default ``edge-ser-HOSTNAME-PID``).
    qos: QoS of the event messages (0 or 1; state, status and discovery always use 1).
    queue_size: events kept while the broker cannot take them (oldest dropped beyond this).
    keepalive: seconds between pings (a silent broker is noticed after 1.5x this).
    reconnect_min, reconnect_max: the reconnect backoff (doubling from min to max seconds).
    close_timeout: seconds close() waits to deliver what is queued and ``offline``.
    """

    host: str
    port: int = 1883
    prefix: str = "edge_ser"
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False
    discovery_prefix: Optional[str] = "homeassistant"
    node_id: Optional[str] = None
    client_id: Optional[str] = None
    qos: int = 1
    queue_size: int = 256
    keepalive: int = 10
    reconnect_min: float = 0.5
    reconnect_max: float = 15.0
    close_timeout: float = 2.0
    topics: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        p = self.prefix
        self.topics = {"event": f"{p}/event", "state": f"{p}/state", "status": f"{p}/status"}
        if self.node_id is None:
            self.node_id = "edge_ser_" + re.sub(r"[^A-Za-z0-9_-]", "_", p).strip("_")
        if self.client_id is None:
            self.client_id = f"edge-ser-{socket.gethostname()}-{__import__('os').getpid()}"[:64]

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttSettings:
    """``mqtt://[user:pass@]host[:port]/prefix[?discovery=homeassistant|off&client_id=..&node_id=..&qos=0|1]``
    -> MqttSettings; anything else is a UserError saying what is wrong."""
    def bad(why: str) -> UserError:
        return UserError(f"--mqtt {url!r}: {why} (expected mqtt://[user:pass@]host[:port]/prefix)")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad(str(exc)) from None
    if parts.scheme.lower() not in SCHEMES:
        raise bad(f"scheme must be mqtt:// or mqtts://, not {parts.scheme + '://' if parts.scheme else 'none'}")
    default_port, tls = SCHEMES[parts.scheme.lower()]
    if not parts.hostname:
        raise bad("no broker host")
    if port == 0:
        raise bad("port 0")
    prefix = unquote(parts.path).strip("/") or "edge_ser"
    if any(c in prefix for c in "+#\0") or "//" in prefix:
        raise bad(f"the topic prefix {prefix!r} may not hold '+', '#' or empty levels")
    if "#" in url:
        raise bad("'#' is a wildcard, not allowed in a topic prefix")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(QUERY_KEYS))
    if unknown:
        raise bad(f"unknown parameter {unknown[0]!r} (known: {', '.join(QUERY_KEYS)})")
    one = {k: v[-1] for k, v in query.items()}
    discovery = one.get("discovery", "homeassistant").strip("/")
    if discovery.lower() in ("off", "none", "no", "false", "0", ""):
        discovery = None
    elif any(c in discovery for c in "+#"):
        raise bad(f"discovery prefix {discovery!r} may not hold '+' or '#'")
    qos = one.get("qos", "1")
    if qos not in ("0", "1"):
        raise bad(f"qos must be 0 or 1, not {qos!r}")
    return MqttSettings(host=parts.hostname, port=port or default_port, prefix=prefix,
                        username=unquote(parts.username) if parts.username is not None else None,
                        password=unquote(parts.password) if parts.password is not None else None, tls=tls,
                        discovery_prefix=discovery, node_id=one.get("node_id") or None,
                        client_id=one.get("client_id") or None, qos=int(qos))


def state_of(event: dict) -> dict:
    """The retained state message for an event."""
    return {k: event.get(k) for k in ("speech", "emotion", "intensity", "label", "confidence", "t", "ts")}


def discovery_configs(settings: MqttSettings, info: dict) -> dict:
    """Home Assistant MQTT discovery: {topic: config} for the emotion, intensity, confidence and speech sensors."""
    if settings.discovery_prefix is None:
        return {}
    from .. import __version__
    node, top = settings.node_id, settings.topics
    device = {"identifiers": [node], "name": f"edge-ser {settings.prefix}", "manufacturer": "edge-ser",
              "model": str(info.get("model") or "edge-ser"), "sw_version": __version__}
    common = {"state_topic": top["state"], "availability_topic": top["status"], "payload_available": "online",
              "payload_not_available": "offline", "device": device,
              "origin": {"name": "edge-ser", "sw_version": __version__}}
    sensors = {
        ("sensor", "emotion"): {"name": "Emotion", "icon": "mdi:emoticon-outline",
                                "value_template": "{{ value_json.emotion or 'none' }}",
                                "json_attributes_topic": top["state"]},
        ("sensor", "intensity"): {"name": "Emotion intensity", "icon": "mdi:gauge",
                                  "value_template": "{{ value_json.intensity or 'none' }}"},
        ("sensor", "confidence"): {"name": "Emotion confidence", "unit_of_measurement": "%",
                                   "state_class": "measurement", "icon": "mdi:percent",
                                   "value_template": "{{ ((value_json.confidence or 0) * 100) | round(0) }}"},
        ("binary_sensor", "speech"): {"name": "Speech", "device_class": "sound",
                                      "value_template": "{{ 'ON' if value_json.speech else 'OFF' }}"},
    }
    return {f"{settings.discovery_prefix}/{component}/{node}/{key}/config":
            {**common, **extra, "unique_id": f"{node}_{key}", "object_id": f"{node}_{key}"}
            for (component, key), extra in sensors.items()}


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise UserError("--mqtt needs paho-mqtt: pip install 'edge-ser[mqtt]'") from None
    return mqtt


class MqttSink(Sink):
    """Publishes events to an MQTT broker from paho's network thread and a sender thread: `publish` only appends
    to a bounded queue, so the audio loop never waits for the network."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, info: dict | None = None):
        mqtt = _paho()
        self.settings = settings
        self.info = dict(info or {})
        self.on_status = lambda status: None
        self._mqtt = mqtt
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._down_reported = False
        self._closing = False
        self._state_payload: str | None = None
        self._last_key = None
        self.sent = self.dropped = self.reconnects = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        if settings.username is not None:
            c.username_pw_set(settings.username, settings.password)
        if settings.tls:
            c.tls_set()
        c.will_set(settings.topics["status"], "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=max(1, int(settings.reconnect_min)), max_delay=int(settings.reconnect_max))
        c.max_inflight_messages_set(32)
        c.max_queued_messages_set(64)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        self.client = c
        self._sender = threading.Thread(target=self._send_loop, name="edge-ser-mqtt-sender", daemon=True)

    # -- the audio thread's side -------------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        try:
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive)
        except (ValueError, OSError) as exc:
            raise UserError(f"--mqtt: {exc}") from None
        self.client.loop_start()
        self._sender.start()

    def publish(self, event: dict) -> None:
        self._put(self.settings.topics["event"], json.dumps(event, default=str), self.settings.qos, False)
        if event.get("type") == "status":
            return
        key = (event.get("speech"), event.get("label"))
        if key != self._last_key:
            self._last_key = key
            self._state_payload = json.dumps(state_of(event), default=str)
            self._put(self.settings.topics["state"], self._state_payload, 1, True)

    def status(self, status: dict) -> None:
        self._put(self.settings.topics["event"], json.dumps(status, default=str), self.settings.qos, False)

    def _put(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        with self._cond:
            self._queue.append((topic, payload, qos, retain))
            while len(self._queue) > self.settings.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._cond.notify()

    def close(self) -> None:
        s = self.settings
        deadline = time.monotonic() + s.close_timeout
        with self._cond:  # let the sender deliver what is queued while the broker is there (or still coming:
            # a short run may end before the first connection is made)
            while self._queue and time.monotonic() < deadline and (
                    self._connected or not (self._ever_connected or self._down_reported)):
                self._cond.wait(0.05)
            self._closing = True
            self._cond.notify_all()
        self._sender.join(timeout=1.0)
        if self._connected:
            info = self.client.publish(s.topics["status"], "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        stopper = threading.Thread(target=self.client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(timeout=2.0)
        if self.dropped:
            log.info("mqtt %s: %d messages dropped while the broker could not take them", s.where, self.dropped)

    def summary(self) -> str:
        return (f"mqtt {self.settings.where}: {self.sent} sent, {self.dropped + len(self._queue)} dropped, "
                f"{self.reconnects} reconnects")

    # -- paho's network thread ---------------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        s = self.settings
        if reason_code.is_failure:  # bad credentials, not authorised, ...: paho retries with backoff
            self._report_down(f"broker {s.where} refused the connection: {reason_code}")
            return
        client.publish(s.topics["status"], "online", qos=1, retain=True)
        for topic, config in discovery_configs(s, self.info).items():
            client.publish(topic, json.dumps(config), qos=1, retain=True)
        if self._state_payload is not None:
            client.publish(s.topics["state"], self._state_payload, qos=1, retain=True)
        again = self._ever_connected
        with self._cond:
            self._connected = True
            self._ever_connected = True
            self._cond.notify_all()
        if again:
            self.reconnects += 1
        if again or self._down_reported:
            self.on_status(status_event("reconnected" if again else "connected", sink="mqtt", broker=s.where,
                                        message=f"{'reconnected' if again else 'connected'} to the broker {s.where}"))
        else:
            log.info("mqtt: connected to %s, publishing under %s/", s.where, s.prefix)
        self._down_reported = False

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._cond:
            self._connected = False
        if not self._closing:
            self._report_down(f"lost the broker {self.settings.where} ({reason_code}); reconnecting")

    def _on_connect_fail(self, client, userdata) -> None:
        self._report_down(f"cannot reach the broker {self.settings.where}; retrying")

    def _report_down(self, message: str) -> None:
        if self._down_reported or self._closing:
            return
        self._down_reported = True
        log.info("mqtt: %s", message)  # the status event says it
        self.on_status(status_event("reconnecting", sink="mqtt", broker=self.settings.where, message=message))

    # -- the sender thread -------------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        full = self._mqtt.MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
        while True:
            with self._cond:
                while not self._closing and not (self._connected and self._queue):
                    self._cond.wait(0.5)
                if self._closing:
                    return
                topic, payload, qos, retain = self._queue.popleft()
            try:
                rc = self.client.publish(topic, payload, qos=qos, retain=retain).rc
            except Exception as exc:  # never let the thread die: the message is lost, the next ones go on
                log.warning("mqtt: publish failed: %s", exc)
                continue
            if rc == full:  # paho's own in-flight window is full: put it back, wait for acknowledgements
                with self._cond:
                    self._queue.appendleft((topic, payload, qos, retain))
                    self._cond.wait(0.05)
            else:  # sent, or queued by paho for the reconnect (QoS 1 while the link just dropped)
                self.sent += 1
                with self._cond:
                    self._cond.notify_all()
