"""The MQTT sink against a real mosquitto broker started here on a free loopback port, and a real paho subscriber:
events, the retained state and status, Home Assistant discovery; the broker killed and restarted while a real-time
`listen` goes on; an unreachable broker; bad URLs."""
from __future__ import annotations

import json
import shutil
import time

import pytest

from edge_ser.errors import UserError
from sinks_support import MOSQUITTO, SAMPLE, Listen, Mosquitto, Subscriber, free_port, long_input

try:
    import paho.mqtt.client  # noqa: F401
except ImportError as exc:
    pytest.skip(f"paho-mqtt is not installed (pip install 'edge-ser[mqtt]'): {exc}", allow_module_level=True)

from edge_ser.sinks.mqtt import MqttSettings, MqttSink, discovery_configs, parse_mqtt_url, state_of  # noqa: E402
from edge_ser.settings import DEFAULT_MODEL  # noqa: E402  (what listen runs without --model)

needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt-get install mosquitto; "
                                                            "scripts/sysdeps.sh does it)")


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


def test_url_parsing():
    s = parse_mqtt_url("mqtt://robot:s%40cret@broker.local:1884/home/robot1?discovery=ha&qos=0")
    assert (s.host, s.port, s.prefix, s.username, s.password, s.tls, s.qos) == \
        ("broker.local", 1884, "home/robot1", "robot", "s@cret", False, 0)
    assert s.topics == {"event": "home/robot1/event", "state": "home/robot1/state", "status": "home/robot1/status"}
    assert s.discovery_prefix == "ha" and s.node_id == "edge_ser_home_robot1"
    d = parse_mqtt_url("mqtts://10.0.0.5")
    assert (d.port, d.tls, d.prefix, d.discovery_prefix, d.username) == (8883, True, "edge_ser", "homeassistant", None)
    assert parse_mqtt_url("mqtt://h/p?discovery=off").discovery_prefix is None
    for bad in ("http://h/p", "h:1883/p", "mqtt:///p", "mqtt://h:99999/p", "mqtt://h:0/p", "mqtt://h:abc/p",
                "mqtt://h/a/#", "mqtt://h/a/+/b", "mqtt://h/p?colour=red", "mqtt://h/p?qos=2", ""):
        with pytest.raises(UserError) as err:
            parse_mqtt_url(bad)
        assert "--mqtt" in str(err.value) and "\n" not in str(err.value)


def test_discovery_configs_name_the_state_topic():
    s = parse_mqtt_url("mqtt://h/robot1")
    configs = discovery_configs(s, {"model": "fine15-cnn"})
    assert sorted(configs) == ["homeassistant/binary_sensor/edge_ser_robot1/speech/config",
                               "homeassistant/sensor/edge_ser_robot1/confidence/config",
                               "homeassistant/sensor/edge_ser_robot1/emotion/config",
                               "homeassistant/sensor/edge_ser_robot1/intensity/config"]
    for c in configs.values():
        assert c["state_topic"] == "robot1/state" and c["availability_topic"] == "robot1/status"
        assert c["unique_id"].startswith("edge_ser_robot1_") and c["device"]["identifiers"] == ["edge_ser_robot1"]
        assert "value_json" in c["value_template"]
    assert discovery_configs(parse_mqtt_url("mqtt://h/r?discovery=off"), {}) == {}


def test_publish_never_waits_and_the_queue_is_bounded():
    """No broker at all: publish only queues (bounded, oldest dropped and counted); close returns promptly."""
    s = MqttSettings(host="127.0.0.1", port=free_port(), prefix="bounded", queue_size=20, close_timeout=0.5)
    sink = MqttSink(s)
    statuses = []
    sink.on_status = statuses.append
    sink.start()
    event = {"t": 0.5, "speech": True, "label": "angry_high", "emotion": "angry", "intensity": "high",
             "confidence": 0.9, "scores": {f"label{i}": 0.01 for i in range(15)}}
    started = time.perf_counter()
    for i in range(2000):
        sink.publish({**event, "t": 0.5 * i})
    per_event_ms = (time.perf_counter() - started) / 2000 * 1000
    assert len(sink._queue) <= 20 and sink.dropped >= 2000 - 20
    assert per_event_ms < 2.0, per_event_ms
    deadline = time.monotonic() + 10
    while not statuses and time.monotonic() < deadline:
        time.sleep(0.05)
    assert statuses and statuses[0]["state"] == "reconnecting" and statuses[0]["sink"] == "mqtt"
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 4.0


@needs_broker
def test_events_state_status_and_discovery_reach_a_real_subscriber(broker):
    sub = Subscriber(broker.port, ["robot1/#", "homeassistant/#"])
    try:
        with Listen("--input", str(SAMPLE), "--fast", "--mqtt", f"mqtt://127.0.0.1:{broker.port}/robot1") as run:
            assert run.wait(60) == 0, run.stderr
        events = run.events
        assert len(events) >= 5 and "Traceback" not in run.stderr
        assert not run.statuses, run.statuses  # the broker was there all along
        assert sub.wait_for(lambda: len(sub.on("robot1/event")) >= len(events)), sub.messages
        received = [json.loads(p) for p, _ in sub.on("robot1/event")]
        assert [e["t"] for e in received] == [e["t"] for e in events]
        assert [e["label"] for e in received] == [e["label"] for e in events]
        # (a live subscriber sees retain=False; the retained copies are checked below)
        assert sub.wait_for(lambda: [p for p, _ in sub.on("robot1/status")] == ["online", "offline"]), sub.messages
        assert "mqtt 127.0.0.1" in run.stderr and "0 dropped" in run.stderr
    finally:
        sub.close()
    # a subscriber that comes afterwards gets what is retained: the state, offline, the discovery configs
    late = Subscriber(broker.port, ["robot1/#", "homeassistant/#"])
    try:
        assert late.wait_for(lambda: len([m for m in late.messages if m[0].startswith("homeassistant/")]) >= 4
                             and late.on("robot1/state") and late.on("robot1/status"))
        assert late.on("robot1/status") == [("offline", True)]
        assert late.on("robot1/event") == []  # events are not retained
        state, retained = late.on("robot1/state")[-1]
        # published when speech/label change: the first event of the last run of the same label
        key = lambda e: (e["speech"], e["label"])  # noqa: E731
        first = next(e for i, e in enumerate(events) if all(key(x) == key(events[-1]) for x in events[i:]))
        assert retained and json.loads(state) == json.loads(json.dumps(state_of(first)))
        assert json.loads(state)["label"] == events[-1]["label"]
        configs = {t: json.loads(p) for t, p, r in late.messages if t.startswith("homeassistant/") and r}
        assert set(configs) == set(discovery_configs(parse_mqtt_url("mqtt://h/robot1"), {}))
        emotion = configs["homeassistant/sensor/edge_ser_robot1/emotion/config"]
        assert emotion["state_topic"] == "robot1/state" and emotion["device"]["model"] == DEFAULT_MODEL
    finally:
        late.close()


@needs_broker
def test_broker_killed_and_restarted_mid_stream(broker, tmp_path):
    """A real-time listen keeps going while the broker is away for ~2 s, says so in two status events, and
    publishes again after the broker is back (then it is stopped like Ctrl-C: exit 0)."""
    audio = long_input(tmp_path / "long.wav", repeats=8)  # 28 s: room for paho's backoff on a loaded machine
    sub = Subscriber(broker.port, ["r2/#"])
    try:
        with Listen("--input", str(audio), "--mqtt", f"mqtt://127.0.0.1:{broker.port}/r2") as run:
            assert run.wait_for(lambda: len(sub.on("r2/event")) >= 4, 20), (run.stderr, sub.messages)
            broker.kill()
            t_killed = run.events[-1]["t"]
            assert run.wait_for(lambda: any(s["state"] == "reconnecting" for s in run.statuses), 10), run.lines
            time.sleep(2.0)
            broker.start()
            assert run.proc.poll() is None  # listen went on without the broker
            assert run.wait_for(lambda: any(s["state"] == "reconnected" for s in run.statuses), 20), run.lines
            t_back = run.events[-1]["t"]  # the subscriber (reconnecting too) receives the events after this
            assert sub.wait_for(lambda: any(json.loads(p).get("t", 0) > t_back for p, _ in sub.on("r2/event")), 15)
            assert run.proc.poll() is None
            assert run.stop() == 0, run.stderr
        states = [s["state"] for s in run.statuses]
        assert states == ["reconnecting", "reconnected"], run.statuses
        assert all(s["sink"] == "mqtt" for s in run.statuses)
        ts = [e["t"] for e in run.events]
        assert ts == [0.5 * (i + 1) for i in range(len(ts))], ts  # every hop, none lost while the broker was away
        assert ts[-1] > t_killed + 2.5
        assert "Traceback" not in run.stderr and "1 reconnects" in run.stderr
    finally:
        sub.close()


def test_unreachable_broker_is_a_status_event_not_a_failure():
    port = free_port()  # nothing listens there
    with Listen("--input", str(SAMPLE), "--fast", "--mqtt", f"mqtt://127.0.0.1:{port}/nobody") as run:
        assert run.wait(30) == 0, run.stderr
    assert len(run.events) >= 5
    assert [s["state"] for s in run.statuses] == ["reconnecting"]
    assert run.statuses[0]["broker"] == f"127.0.0.1:{port}"
    assert "Traceback" not in run.stderr and "error:" not in run.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1/p", "mqtt://127.0.0.1:70000/p", "mqtt:///p", "mqtt://h/a/#",
                                 "mqtt://h/p?retain=yes"])
def test_bad_url_is_one_error_line(url):
    with Listen("--input", str(SAMPLE), "--fast", "--mqtt", url) as run:
        assert run.wait(30) == 2
    lines = [line for line in run.stderr_lines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --mqtt"), lines
    assert run.lines == []


@needs_broker
@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed")
def test_user_and_password_from_the_url(tmp_path):
    b = Mosquitto(tmp_path, users={"robot": "p@ss:word"}).start()
    try:
        sub = Subscriber(b.port, ["auth/#"], auth=("robot", "p@ss:word"))
        try:
            with Listen("--input", str(SAMPLE), "--fast", "--mqtt",
                        f"mqtt://robot:p%40ss%3Aword@127.0.0.1:{b.port}/auth") as run:
                assert run.wait(30) == 0, run.stderr
            assert not run.statuses and len(run.events) >= 5
            assert sub.wait_for(lambda: len(sub.on("auth/event")) == len(run.events)), sub.messages
        finally:
            sub.close()
        with Listen("--input", str(SAMPLE), "--fast", "--mqtt", f"mqtt://robot:wrong@127.0.0.1:{b.port}/auth") as run:
            assert run.wait(30) == 0, run.stderr  # refused credentials: a status event, listen goes on
        assert len(run.events) >= 5 and [s["state"] for s in run.statuses] == ["reconnecting"]
        assert "refused" in run.statuses[0]["message"] and "Traceback" not in run.stderr
    finally:
        b.stop()


def test_missing_paho_is_one_error_line(tmp_path):
    import os
    from sinks_support import REPO
    fake = tmp_path / "no_paho" / "paho"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named paho (test)')\n")
    path = os.pathsep.join([str(fake.parent), str(REPO), os.environ.get("PYTHONPATH", "")])
    with Listen("--input", str(SAMPLE), "--fast", "--mqtt", "mqtt://127.0.0.1/p", env={"PYTHONPATH": path}) as run:
        assert run.wait(30) == 2
    lines = [line for line in run.stderr_lines if line.strip()]
    assert lines == ["error: --mqtt needs paho-mqtt: pip install 'edge-ser[mqtt]'"] and run.lines == []
