"""Delivery delay of the sinks on this machine: `edge-ser listen` replays a recording in real time with --mqtt (a
mosquitto started here on a free loopback port) and --serve; a paho subscriber and a WebSocket client note, for
each event, their wall-clock time of arrival minus the event's `ts` (set when the event was made, before any sink
saw it).  Prints a JSON summary: n, median, p95 and max in milliseconds per sink.

    python reports/integration/measure_delivery.py [--seconds 60]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from sinks_support import Listen, Mosquitto, Subscriber, long_input  # noqa: E402


def summary(delays: list[float]) -> dict:
    d = sorted(delays)
    if not d:
        return {"n": 0}
    return {"n": len(d), "median_ms": round(d[len(d) // 2] * 1000, 2),
            "p95_ms": round(d[min(len(d) - 1, int(0.95 * len(d)))] * 1000, 2), "max_ms": round(d[-1] * 1000, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    from websockets.sync.client import connect
    with tempfile.TemporaryDirectory() as tmp:
        audio = long_input(Path(tmp) / "long.wav", repeats=max(1, int(args.seconds / 3.47)))
        broker = Mosquitto(Path(tmp)).start()
        mqtt_delays: list[float] = []
        ws_delays: list[float] = []
        sub = Subscriber(broker.port, ["measure/event"])
        sub.client.on_message = lambda c, u, m: mqtt_delays.append(time.time() - json.loads(m.payload)["ts"])
        try:
            with Listen("--input", str(audio), "--mqtt", f"mqtt://127.0.0.1:{broker.port}/measure",
                        "--serve", "127.0.0.1:0") as run:
                url = run.url().replace("http://", "ws://") + "events"

                def client():
                    with connect(url) as ws:
                        live = False
                        for message in ws:
                            event = json.loads(message)
                            if event.get("type") == "hello":
                                continue
                            now = time.time()
                            if live or now - event["ts"] < 0.4:  # skip the history replayed on connect
                                live = True
                                ws_delays.append(now - event["ts"])
                reader = threading.Thread(target=client, daemon=True)
                reader.start()
                rc = run.wait(args.seconds + 60)
                reader.join(timeout=5)
            print(json.dumps({"input_s": round(len(run.events) * 0.5, 1), "listen_rc": rc,
                              "mqtt": summary(mqtt_delays), "websocket": summary(ws_delays),
                              "summary_line": run.stderr_lines[-1]}, indent=1))
        finally:
            sub.close()
            broker.stop()


if __name__ == "__main__":
    main()
