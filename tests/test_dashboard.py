"""The dashboard: its files are shipped and load nothing from the network; headless Chromium against a live
`listen --serve` shows the streamed emotions in its DOM; a screenshot is saved in reports/integration/."""
from __future__ import annotations

import importlib
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from sinks_support import REPO, Listen, free_port, long_input
from edge_ser.settings import DEFAULT_MODEL  # noqa: E402  (what listen runs without --model)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
# Each run saves its screenshots under reports/integration/last-test-run/ (not tracked: a test run leaves the tree
# clean); the committed reports/integration/dashboard*.png are copies of one such run.
SCREENSHOT = REPO / "reports" / "integration" / "last-test-run" / "dashboard.png"
SMALL_SCREENSHOT = REPO / "reports" / "integration" / "last-test-run" / "dashboard-800x480.png"  # a robot's own small screen
FILES = ("index.html", "app.js", "style.css")
# no background traffic: the page is fetched from 127.0.0.1 and nothing else
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-breakpad", "--disable-domain-reliability", "--no-pings",
                  "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
                  "--hide-scrollbars"]


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def _asset(name: str) -> str:
    return resources.files("edge_ser.sinks").joinpath("dashboard", name).read_text(encoding="utf-8")


def test_dashboard_is_shipped_and_offline():
    html, js, css = (_asset(n) for n in FILES)
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert sorted(refs) == ["app.js", "style.css"]  # relative: served by the sink itself
    for text in (html, css):
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), "a reference off this device"
    assert "@import" not in css and "url(" not in css
    assert set(re.findall(r"https?://[^\s\"']+", js)) == {"http://www.w3.org/2000/svg"}  # a namespace, not a fetch
    assert "fetch(" not in js and "XMLHttpRequest" not in js and "location.host" in js
    if tomllib is not None:
        data = tomllib.loads((REPO / "pyproject.toml").read_text())
        globs = data["tool"]["setuptools"]["package-data"]["edge_ser"]
        assert "sinks/dashboard/*" in globs


class _Dom(HTMLParser):
    """The elements of a dumped DOM that the test reads: by id (text), the timeline's segments, the event rows."""

    def __init__(self):
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self.segments: list[dict] = []
        self.rows: list[dict] = []
        self._open: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        node = {"tag": tag, "attrs": a, "text": ""}
        if a.get("id"):
            self.by_id[a["id"]] = node
        if tag == "rect" and "seg" in (a.get("class") or ""):
            self.segments.append(node)
        if tag == "li" and "ev" in (a.get("class") or "").split():
            self.rows.append(node)
        self._open.append(node)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for node in self._open:
            node["text"] += data


def _chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; "
                                             "scripts/sysdeps.sh does it)")
@pytest.mark.skipif(not _importable("websockets"),
                    reason="websockets is not installed (pip install 'edge-ser[ws]')")
def test_dashboard_in_headless_chromium_shows_the_stream(tmp_path):
    audio = long_input(tmp_path / "long.wav", repeats=9)  # 31 s in real time: still streaming while we look
    profile_dir = tmp_path / "chromium"
    token = "dash-t0ken"
    # with an MQTT broker that is not there: its status event must reach the page too (passed on between sinks)
    mqtt = ["--mqtt", f"mqtt://127.0.0.1:{free_port()}/dash"] if _importable("paho.mqtt.client") else []
    with Listen("--input", str(audio), "--serve", "127.0.0.1:0", "--token", token, *mqtt) as run:
        url = run.url()
        assert run.wait_for(lambda: len(run.events) >= 12, 30), run.stderr
        before = list(run.events)
        dom = _chromium(f"--user-data-dir={profile_dir}", "--virtual-time-budget=4000", "--dump-dom",
                        f"{url}?token={token}")
        assert dom.returncode == 0, dom.stderr[-2000:]
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        for path, size in ((SCREENSHOT, "1280,900"), (SMALL_SCREENSHOT, "800,480")):
            shot = _chromium(f"--user-data-dir={profile_dir}", "--virtual-time-budget=4000", f"--window-size={size}",
                             f"--screenshot={path}", f"{url}?token={token}")
            assert shot.returncode == 0, shot.stderr[-2000:]
        refused = _chromium(f"--user-data-dir={tmp_path / 'fresh'}", "--dump-dom", url)  # no token, no cookie
        assert run.proc.poll() is None  # still streaming while the page was read
        assert run.stop() == 0
    page = _Dom()
    page.feed(dom.stdout)
    streamed = {e["emotion"] for e in run.events if e["emotion"]}
    seen_before = {e["emotion"] for e in before if e["emotion"]}
    assert page.by_id["conn"]["attrs"].get("data-state") == "live"
    assert DEFAULT_MODEL in page.by_id["model"]["text"]
    assert page.by_id["input"]["text"] == audio.name and page.by_id["input"]["attrs"]["title"] == str(audio)
    shown = {s["attrs"]["data-emotion"] for s in page.segments} - {"silence", "speech"}
    assert seen_before <= shown <= streamed, (seen_before, shown, streamed)  # the history, then the live events
    assert len(page.segments) >= len(before)
    assert "silence" in {s["attrs"]["data-emotion"] for s in page.segments}  # the gaps between the repeats
    assert len(page.rows) == 12 and {r["attrs"]["data-emotion"] for r in page.rows} - {""} <= streamed
    current = page.by_id["current-emotion"]["text"].strip()
    assert current in streamed | {"–", "listening…"}
    assert "dBFS" in page.by_id["level-text"]["text"] and "dBFS" in page.by_id["floor-text"]["text"]
    assert page.by_id["level-line"]["attrs"].get("points")  # the level chart has points
    if mqtt:
        assert "reconnecting" in page.by_id["status"]["text"] and "mqtt" in page.by_id["status"]["text"]
    # without the token the server answers 401 and the page holds no event
    assert "401" in refused.stdout and "angry" not in refused.stdout and "fine15" not in refused.stdout
    for path, size in ((SCREENSHOT, (1280, 900)), (SMALL_SCREENSHOT, (800, 480))):
        with open(path, "rb") as f:
            head = f.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == size
        assert path.stat().st_size > 20_000  # a drawn page, not a blank one
