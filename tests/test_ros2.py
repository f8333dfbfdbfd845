"""The ROS 2 sink: `edge-ser listen --ros2` publishing to a real rclpy subscriber (another process), the node's
parameters read through its parameter service, and the one-line error when rclpy is missing.

DDS discovers peers by multicast; the round trip runs inside a loopback-only network namespace (``unshare -n``,
as root) so that no packet leaves this machine, or, without unshare, with discovery limited to localhost."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from sinks_support import REPO, SAMPLE, Listen, long_input
from edge_ser.settings import DEFAULT_MODEL  # noqa: E402  (what listen runs without --model)

try:
    import rclpy  # noqa: F401
    from std_msgs.msg import String  # noqa: F401
    RCLPY_MISSING = None
except Exception as exc:  # ImportError, or a broken ROS environment
    RCLPY_MISSING = (f"rclpy is not available ({type(exc).__name__}: {exc}); on x86_64: pip install "
                     "'ros-rclpy[fastrtps]' ros-std-msgs, elsewhere source a ROS 2 installation")
    print(f"test_ros2: skipping the round trip: {RCLPY_MISSING}", file=sys.stderr)

SUBSCRIBER = textwrap.dedent("""
    import json, subprocess, sys, time
    import rclpy
    from rclpy.parameter_client import AsyncParameterClient
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node("edge_ser_test_subscriber")
    events, states = [], []
    node.create_subscription(String, "/edge_ser/event", lambda m: events.append(json.loads(m.data)), 100)
    node.create_subscription(String, "/edge_ser/state", lambda m: states.append(json.loads(m.data)), QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    listen = subprocess.Popen([sys.executable, "-m", "edge_ser", *sys.argv[1:]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    params = {}
    client = AsyncParameterClient(node, "edge_ser")
    deadline = time.monotonic() + 40
    future = None
    while listen.poll() is None and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if not params and future is None and client.services_are_ready():
            future = client.get_parameters(["model", "format", "profile", "device", "input", "hop", "window"])
        if future is not None and future.done() and not params:
            values = future.result().values
            names = ["model", "format", "profile", "device", "input", "hop", "window"]
            params = {n: (v.string_value if v.type == 4 else v.double_value) for n, v in zip(names, values)}
    out, err = listen.communicate(timeout=30)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # the last messages
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({"rc": listen.returncode, "stdout": out, "stderr": err, "events": events,
                      "states": states, "params": params}))
    node.destroy_node()
    rclpy.shutdown()
""")


def _namespace_prefix() -> list[str]:
    """Run inside a new loopback-only network namespace when we can (root with unshare and ip)."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if os.geteuid() == 0 and unshare and ip:
        probe = subprocess.run([unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True)
        if probe.returncode == 0:
            return [unshare, "-n", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"']
    return []


@pytest.mark.skipif(RCLPY_MISSING is not None, reason=str(RCLPY_MISSING))
@pytest.mark.parametrize("command, model, hop", [
    (["listen", "--json", "--ros2", "--hop", "0.5"], DEFAULT_MODEL, 0.5),
    (["ros2", "--json", "--ros-args", "-p", "model:=fine15-rfc", "-p", "hop:=1.0"], "fine15-rfc", 1.0),
])
def test_ros2_round_trip(tmp_path, command, model, hop):
    audio = long_input(tmp_path / "long.wav", repeats=2)  # 7 s in real time: discovery has time to settle
    script = tmp_path / "subscriber.py"
    script.write_text(SUBSCRIBER)
    env = {**os.environ, "ROS_DOMAIN_ID": str(17 + os.getpid() % 80), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    prefix = _namespace_prefix()
    print("running the ROS 2 round trip " + ("in a loopback-only network namespace" if prefix else
                                             "with discovery limited to localhost"))
    proc = subprocess.run([*prefix, sys.executable, str(script), command[0], "--input", str(audio), *command[1:]],
                          capture_output=True, text=True, timeout=55, env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, result["stderr"]
    printed = [json.loads(line) for line in result["stdout"].splitlines()]
    printed = [e for e in printed if e.get("type") != "status"]
    got = [e for e in result["events"] if e.get("type") != "status"]
    # discovery takes a moment (seconds on a loaded machine): the first hops may go before the subscriber is
    # matched, none after — what arrives is the tail of what was printed, in order
    assert len(printed) >= 7 / hop - 1 and len(got) >= 3, (len(got), len(printed))
    assert got == printed[-len(got):]
    assert result["states"], "nothing on /edge_ser/state"
    last = result["states"][-1]
    assert last["label"] == printed[-1]["label"] and last["speech"] == printed[-1]["speech"]
    assert result["params"] == {"model": model, "format": "onnx", "profile": "", "device": "",
                                "input": str(audio), "hop": hop, "window": 2.5}
    assert "ros2 /edge_ser/event" in result["stderr"] and "Traceback" not in result["stderr"]


def test_missing_rclpy_is_one_error_line(tmp_path):
    fake = tmp_path / "no_ros" / "rclpy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named rclpy (test)')\n")
    path = os.pathsep.join([str(fake.parent), str(REPO), os.environ.get("PYTHONPATH", "")])
    with Listen("--input", str(SAMPLE), "--fast", "--ros2", env={"PYTHONPATH": path}) as run:
        assert run.wait(30) == 2
    lines = [line for line in run.stderr_lines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --ros2 needs rclpy"), lines
    assert "ros-rclpy" in lines[0] and run.lines == []


def test_ros_arguments_become_listen_options():
    from edge_ser.errors import UserError
    from edge_ser.sinks.ros2 import split_ros_args
    listen, ros, extra = split_ros_args(["--input", "a.wav", "--ros-args", "-p", "model:=basic6-cnn", "-r",
                                         "__ns:=/robot1", "--param", "hop:=1.0", "--", "--json"])
    assert listen == ["--input", "a.wav", "--json"]
    assert ros == ["--ros-args", "-p", "model:=basic6-cnn", "-r", "__ns:=/robot1", "--param", "hop:=1.0", "--"]
    assert extra == ["--model", "basic6-cnn", "--hop", "1.0"]
    assert split_ros_args(["--fast"]) == (["--fast"], [], [])
    for bad in (["--ros-args", "-p", "model"], ["--ros-args", "-p", "colour:=red"]):
        with pytest.raises(UserError):
            split_ros_args(bad)
