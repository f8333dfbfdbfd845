"""The WebSocket sink: a real client receiving the events of `listen --serve 127.0.0.1:PORT`, tokens (401, nothing
streamed), addresses (loopback only without a token), a slow client that never blocks the publisher."""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request

import pytest

from edge_ser.errors import UserError
from sinks_support import REPO, SAMPLE, Listen, long_input

try:
    import websockets.sync.client  # noqa: F401
except ImportError as exc:
    pytest.skip(f"websockets is not installed (pip install 'edge-ser[ws]'): {exc}", allow_module_level=True)
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from edge_ser.sinks.websocket import ServeOptions, WebSocketSink, is_loopback, parse_serve  # noqa: E402
from edge_ser.settings import DEFAULT_MODEL  # noqa: E402  (what listen runs without --model)


def test_serve_addresses():
    assert parse_serve("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_serve(":9000") == ("127.0.0.1", 9000) and parse_serve("9000") == ("127.0.0.1", 9000)
    assert parse_serve("localhost") == ("localhost", 8765)
    assert parse_serve("[::1]:80") == ("::1", 80) and parse_serve("::1") == ("::1", 8765)
    assert parse_serve("0.0.0.0:0") == ("0.0.0.0", 0)
    for bad in ("", "h:abc", "h:70000", "a/b:1", "[::1:80", "h:-1"):
        with pytest.raises(UserError):
            parse_serve(bad)
    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("::")


def _messages_until_closed(url: str, limit_s: float, **kw) -> list[dict]:
    out = []
    deadline = time.monotonic() + limit_s
    with connect(url, open_timeout=10, **kw) as ws:
        while time.monotonic() < deadline:
            try:
                out.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
            except (ConnectionClosed, TimeoutError):
                break
    return out


def test_a_client_receives_the_events_of_listen_serve(tmp_path):
    audio = long_input(tmp_path / "long.wav", repeats=1)  # 3.5 s, real time
    with Listen("--input", str(audio), "--serve", "127.0.0.1:0") as run:
        url = run.url()
        assert url.startswith("http://127.0.0.1:")
        with pytest.raises(InvalidStatus) as err:  # a page of another site, open in a browser here
            connect(url.replace("http://", "ws://") + "events", origin="http://evil.example", open_timeout=10)
        assert err.value.response.status_code == 403
        got = _messages_until_closed(url.replace("http://", "ws://") + "events", 30)
        assert run.wait(30) == 0, run.stderr
    hello, streamed = got[0], got[1:]
    assert hello["type"] == "hello" and hello["model"] == DEFAULT_MODEL and hello["hop"] == 0.5
    assert hello["window"] > 0 and "angry_high" in hello["labels"] and hello["input"] == str(audio)
    # everything the JSON stream printed, in order (the first ones replayed from the history)
    assert [(e["t"], e["label"]) for e in streamed] == [(e["t"], e["label"]) for e in run.events]
    assert len(streamed) >= 6 and any(e["speech"] for e in streamed) and not all(e["speech"] for e in streamed)
    assert all("level_db" in e and "noise_floor_db" in e for e in streamed)
    assert "websocket http://127.0.0.1" in run.stderr and "Traceback" not in run.stderr


def _http(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_tokens_401_and_nothing_streamed(tmp_path):
    audio = long_input(tmp_path / "long.wav", repeats=2)
    with Listen("--input", str(audio), "--serve", "127.0.0.1:0", "--token", "s3cret-t0ken") as run:
        url = run.url()
        ws = url.replace("http://", "ws://") + "events"
        assert run.wait_for(lambda: len(run.events) >= 2)
        for bad in (ws, ws + "?token=wrong", ws + "?token="):
            with pytest.raises(InvalidStatus) as err:
                connect(bad, open_timeout=10).close()
            assert err.value.response.status_code == 401
            body = err.value.response.body.decode()
            assert "401" in body and '"t"' not in body and "emotion" not in body
        with pytest.raises(InvalidStatus) as err:
            connect(ws, additional_headers={"Authorization": "Bearer nope"}, open_timeout=10).close()
        assert err.value.response.status_code == 401
        for path in ("", "info", "app.js"):
            status, body = _http(url + path)
            assert status == 401 and b"angry" not in body and b"fine15" not in body
        assert _http(url + "?token=s3cret-t0ken")[0] == 200
        assert _http(url + "info", {"X-Edge-Ser-Token": "s3cret-t0ken"})[0] == 200
        for kw in ({"uri": ws + "?token=s3cret-t0ken"},
                   {"uri": ws, "additional_headers": {"Authorization": "Bearer s3cret-t0ken"}}):
            with connect(open_timeout=10, **kw) as client:
                assert json.loads(client.recv(timeout=10))["type"] == "hello"
                assert "t" in json.loads(client.recv(timeout=10))
        assert run.stop() == 0
    # 4 WebSocket handshakes and 3 page requests without the right token; the 2 accepted clients
    assert "websocket http://127.0.0.1:" in run.stderr and ": 2 clients, 7 refused" in run.stderr, run.stderr


def test_sink_options_are_checked_before_anything_starts():
    from edge_ser.sinks import SinkOptions
    for options, message in ((SinkOptions(serve="0.0.0.0:0"), "needs --token"),
                             (SinkOptions(serve="192.168.1.10:8765"), "needs --token"),
                             (SinkOptions(serve="127.0.0.1:http"), "--serve"),
                             (SinkOptions(serve="127.0.0.1:0", token=""), "--token must not be empty"),
                             (SinkOptions(serve="127.0.0.1:0", token="  "), "--token must not be empty"),
                             (SinkOptions(token="abc"), "--token is for --serve"),
                             (SinkOptions(serve="no-such-host.invalid:0", token="t"), "cannot resolve")):
        with pytest.raises(UserError) as err:
            options.check()
        assert message in str(err.value) and "\n" not in str(err.value)
    SinkOptions(serve="0.0.0.0:0", token="t").check()  # allowed: a token guards it (not bound here)
    SinkOptions(serve="localhost:0").check()


@pytest.mark.parametrize("args, message", [
    (["--serve", "0.0.0.0:0"], "needs --token"),
    (["--token", "abc"], "--token is for --serve"),
])
def test_bad_serve_options_are_one_error_line(args, message):
    with Listen("--input", str(SAMPLE), "--fast", *args) as run:
        assert run.wait(30) == 2
    lines = [line for line in run.stderr_lines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert run.lines == []


def test_port_in_use_is_one_error_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with Listen("--input", str(SAMPLE), "--fast", "--serve", f"127.0.0.1:{port}") as run:
            assert run.wait(30) == 2
    lines = [line for line in run.stderr_lines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: --serve 127.0.0.1:{port}: cannot listen"), lines


def _stalled_client(port: int) -> socket.socket:
    """A client that completes the handshake and then never reads (a tiny receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_a_slow_client_loses_its_oldest_messages_and_blocks_nobody():
    sink = WebSocketSink("127.0.0.1", 0, info={"model": "test"}, options=ServeOptions(history=4, client_queue=16))
    sink.start()
    stalled = _stalled_client(sink.port)
    try:
        with connect(f"ws://127.0.0.1:{sink.port}/events", open_timeout=10, max_size=None) as fast:
            assert json.loads(fast.recv(timeout=10))["type"] == "hello"
            padding = "x" * 16000  # 16 kB per event: the stalled client's socket buffers fill within a few
            worst = 0.0
            received = []
            for i in range(400):
                started = time.perf_counter()
                sink.publish({"t": 0.5 * i, "speech": True, "label": "angry_high", "pad": padding})
                worst = max(worst, time.perf_counter() - started)
                if i % 8 == 7:  # the fast client keeps up as it goes (its queue holds 16)
                    while True:
                        try:
                            received.append(json.loads(fast.recv(timeout=5)))
                        except TimeoutError:
                            break
                        if received[-1].get("t") == 0.5 * i:
                            break
            while not received or received[-1].get("t") != 0.5 * 399:
                received.append(json.loads(fast.recv(timeout=10)))
        print(f"slowest publish {worst * 1000:.2f} ms; the reading client got {sum('t' in m for m in received)} "
              f"of 400; dropped for the stalled one: {sink.dropped}")
        assert worst < 0.05, f"publish took {worst * 1000:.1f} ms"
        ts = [m["t"] for m in received if "t" in m]
        assert ts == [0.5 * i for i in range(400)]  # the client that reads got everything, in order
        assert sink.dropped > 100  # the stalled one lost all but its queue and what the socket buffers took
        assert "dropped" in sink.summary()
    finally:
        started = time.monotonic()
        sink.close()  # with the stalled client still connected
        closing_s = time.monotonic() - started
        stalled.close()
    assert not sink._thread.is_alive() and closing_s < 3.5


def test_fan_out_keeps_going_when_a_sink_fails():
    from edge_ser.sinks import FanOut, Sink, status_event

    class Recorder(Sink):
        def __init__(self, name):
            self.name, self.got = name, []

        def publish(self, event):
            self.got.append(event)

    class Broken(Sink):
        name = "broken"

        def publish(self, event):
            raise OSError("network is unreachable")

        def close(self):
            raise RuntimeError("and it cannot close either")

    a, b, broken = Recorder("a"), Recorder("b"), Broken()
    fan = FanOut([a, broken, b])
    report = fan.report(a)
    fan.publish({"t": 0.5})
    report(status_event("reconnecting", sink="a"))
    drained = fan.drain()
    assert [d["state"] for d in drained] == ["reconnecting"] and fan.drain() == []
    assert a.got == [{"t": 0.5}]  # its own status is not sent back to it
    assert b.got[0] == {"t": 0.5} and b.got[1]["state"] == "reconnecting" and b.got[1]["type"] == "status"
    fan.close()  # the broken sink's close is logged, the others still close


def test_the_input_status_events_reach_the_websocket_clients():
    """A (fake) microphone unplugged and plugged back while listen --serve runs: the device's status events are in
    the WebSocket stream as in the JSON stream."""
    fakes = REPO / "tests" / "fakes"
    env = {"PYTHONPATH": os.pathsep.join([str(fakes), str(REPO)]),
           "FAKE_SD": json.dumps({"speed": 2, "vanish_after": 3, "back_after": 1.0})}
    with Listen("--serve", "127.0.0.1:0", env=env) as run:
        url = run.url().replace("http://", "ws://") + "events"
        got = []
        with connect(url, open_timeout=10) as ws:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
                states = [m.get("state") for m in got if m.get("type") == "status"]
                if "reconnected" in states and sum("t" in m and m.get("type") != "status" for m in got) > 10:
                    break
        assert run.stop() == 0, run.stderr
    states = [m["state"] for m in got if m.get("type") == "status"]
    assert "device_lost" in states and "reconnected" in states, states
    assert states.index("device_lost") < states.index("reconnected")
    printed = [s["state"] for s in run.statuses]  # the JSON stream has them too, in the same order
    assert [s for s in printed if s in ("device_lost", "reconnected")][:2] == ["device_lost", "reconnected"]
    assert "Traceback" not in run.stderr


def test_missing_websockets_is_one_error_line(tmp_path):
    fake = tmp_path / "no_ws" / "websockets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named websockets (test)')\n")
    path = os.pathsep.join([str(fake.parent), str(REPO), os.environ.get("PYTHONPATH", "")])
    with Listen("--input", str(SAMPLE), "--fast", "--serve", "127.0.0.1:0", env={"PYTHONPATH": path}) as run:
        assert run.wait(30) == 2
    lines = [line for line in run.stderr_lines if line.strip()]
    assert lines == ["error: --serve needs websockets: pip install 'edge-ser[ws]'"] and run.lines == []


def test_recognizer_subscribe_feeds_the_sinks():
    """The Python way: open_sinks(..., info=rec.info()) and rec.subscribe(sinks.feed); a client gets the events."""
    import soundfile as sf

    import edge_ser
    from edge_ser.sinks import SinkOptions, open_sinks
    rec = edge_ser.Recognizer()
    sinks = open_sinks(SinkOptions(serve="127.0.0.1:0"), info=rec.info())
    try:
        rec.subscribe(sinks.feed)
        audio, sr = sf.read(str(SAMPLE), dtype="int16")
        events = [e.to_dict() for e in rec.feed(audio, sample_rate=sr)]
        with connect(sinks.sinks[0].url.replace("http://", "ws://") + "events", open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            got = [json.loads(ws.recv(timeout=10)) for _ in events]
    finally:
        sinks.close()
    assert hello["model"] == rec.model.name and hello["hop"] == rec.hop and hello["window"] == 2.5
    assert len(events) >= 4 and got == json.loads(json.dumps(events))
