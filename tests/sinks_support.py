"""Helpers for the sink tests: a longer input made from the shipped sample, `edge-ser listen` run in the background
with its JSON stream read as it comes, and a real mosquitto broker on a free loopback port."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "edge_ser" / "assets" / "sample.wav"


def long_input(path: Path, repeats: int = 4, gap_s: float = 0.6) -> Path:
    """The sample (2.9 s of speech) `repeats` times with gaps of room noise (-66 dBFS, seeded; below the speech
    gate's -55 dBFS): ~3.5 s per repeat."""
    audio, sr = sf.read(str(SAMPLE), dtype="int16")
    noise = np.random.default_rng(0).normal(0.0, 32768 * 10 ** (-66 / 20), int(gap_s * sr))
    gap = np.round(noise).astype(np.int16)
    sf.write(str(path), np.concatenate([np.concatenate([audio, gap]) for _ in range(repeats)]), sr)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Listen:
    """``python -m edge_ser listen ARGS --json`` in the background; `lines` fills with the parsed JSON lines."""

    def __init__(self, *args: str, env: dict | None = None):
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_ser", "listen", "--json", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                                     env=full_env)
        self.lines: list[dict] = []
        self.stderr_lines: list[str] = []
        self._readers = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_out(self):
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"unparsed": line})

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    @property
    def events(self) -> list[dict]:
        return [d for d in self.lines if "t" in d and d.get("type") != "status"]

    @property
    def statuses(self) -> list[dict]:
        return [d for d in self.lines if d.get("type") == "status"]

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers finish
                return bool(predicate())
            time.sleep(0.05)
        return False

    def url(self, timeout: float = 20.0) -> str:
        """The dashboard's URL from the 'serving:' header line."""
        found = []

        def have():
            for line in self.stderr_lines:
                if line.startswith("serving: dashboard "):
                    found.append(line.split()[2].rstrip(","))
                    return True
            return False
        assert self.wait_for(have, timeout), f"no 'serving:' line; stderr: {self.stderr}"
        return found[0]

    def wait(self, timeout: float = 60.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=5)
        return rc

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (listen ends like Ctrl-C: summary, exit 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)


class Mosquitto:
    """A real broker on 127.0.0.1:PORT (anonymous, no persistence), killed and restarted on the same port."""

    def __init__(self, workdir: Path, port: int | None = None, users: dict | None = None):
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        conf = f"listener {self.port} 127.0.0.1\npersistence false\n"
        if users:  # password authentication, nobody anonymous
            passwords = workdir / "passwords"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", str(passwords), user,
                                password], check=True, capture_output=True)
            passwords.chmod(0o600)
            conf += f"allow_anonymous false\npassword_file {passwords}\n"
            if os.geteuid() == 0:  # else mosquitto drops to its own user, who cannot read pytest's tmp dirs
                conf += "user root\n"
        else:
            conf += "allow_anonymous true\n"
        self.conf.write_text(conf)
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError(f"mosquitto did not open port {self.port}: {self.log.read_text()[-500:]}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class Subscriber:
    """A real paho client subscribed to `topics`, collecting (topic, payload text, retain) as they come; it
    reconnects by itself when the broker comes back."""

    def __init__(self, port: int, topics: list[str], auth: tuple[str, str] | None = None):
        import paho.mqtt.client as mqtt
        self.messages: list[tuple[str, str, bool]] = []
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{os.getpid()}-{port}")
        self.client.reconnect_delay_set(1, 2)
        if auth:
            self.client.username_pw_set(*auth)

        def on_connect(client, userdata, flags, rc, props):
            for t in topics:
                client.subscribe(t, qos=1)
            self.connected.set()

        self.client.on_connect = on_connect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode(), bool(m.retain)))
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self.connected.wait(10), "the test subscriber could not connect"

    def on(self, topic: str) -> list[tuple[str, bool]]:
        return [(p, r) for t, p, r in list(self.messages) if t == topic]

    def wait_for(self, predicate, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return bool(predicate())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
