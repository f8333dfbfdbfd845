"""ROS 2 sink (``listen --ros2`` or ``edge-ser ros2``): a node ``edge_ser`` publishing

- ``/edge_ser/event`` (``std_msgs/String``): every event and status event of the JSON stream, as that JSON;
- ``/edge_ser/state`` (``std_msgs/String``, transient-local depth 1: a late subscriber gets the latest): the current
  emotion ``{"speech", "emotion", "intensity", "label", "confidence", "t", "ts"}``, published when speech/label
  change;

with read-only node parameters ``model``, ``format``, ``profile``, ``device``, ``input``, ``hop``, ``window`` saying
what runs.  rclpy is not on PyPI under its own name: it comes from the user's ROS 2 installation (``source
/opt/ros/<distro>/setup.bash``) or, on x86_64, from the ``ros-rclpy[fastrtps]`` and ``ros-std-msgs`` wheels.
"""
from __future__ import annotations

import json
import logging
import threading

from ..errors import UserError
from . import Sink
from .mqtt import state_of

log = logging.getLogger("edge_ser.sinks.ros2")

EVENT_TOPIC = "/edge_ser/event"
STATE_TOPIC = "/edge_ser/state"
NODE_NAME = "edge_ser"
PARAMETERS = ("model", "format", "profile", "device", "input", "hop", "window")
MISSING = ("--ros2 needs rclpy and std_msgs: source your ROS 2 installation (source /opt/ros/<distro>/setup.bash) "
           "or, on x86_64, pip install 'ros-rclpy[fastrtps]' ros-std-msgs")


# ROS parameters that `edge-ser ros2 --ros-args -p NAME:=VALUE` turns into listen's options.
LISTEN_OPTIONS = {"model": "--model", "profile": "--profile", "device": "--device", "hop": "--hop",
                  "format": "--format", "input": "--input"}
# The ROS arguments (``--ros-args ...``) that `edge-ser ros2` hands to the node it starts (remappings, namespace,
# log level, parameters).
DEFAULT_ARGS: list[str] = []


def split_ros_args(args: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``[listen options...] --ros-args [ROS args...] [--] [more listen options]`` -> (listen options, the ROS
    arguments from ``--ros-args`` on, listen options from the ``-p NAME:=VALUE`` parameters named in
    `LISTEN_OPTIONS`).  A parameter that names no listen option is left to the node (a UserError if unknown)."""
    listen, ros, extra = [], [], []
    i = 0
    while i < len(args):
        if args[i] != "--ros-args":
            listen.append(args[i])
            i += 1
            continue
        ros.append("--ros-args")
        i += 1
        while i < len(args) and args[i] != "--":
            arg = args[i]
            ros.append(arg)
            if arg in ("-p", "--param") and i + 1 < len(args):
                name, sep, value = args[i + 1].partition(":=")
                if not sep:
                    raise UserError(f"--ros-args {arg} {args[i + 1]!r}: expected NAME:=VALUE")
                if name in LISTEN_OPTIONS:
                    extra += [LISTEN_OPTIONS[name], value]
                elif name not in PARAMETERS:
                    raise UserError(f"--ros-args {arg} {name}: the node's parameters are "
                                    f"{', '.join(LISTEN_OPTIONS)}")
                ros.append(args[i + 1])
                i += 1
            i += 1
        if i < len(args):  # "--": the ROS arguments end here
            ros.append("--")
            i += 1
    return listen, ros, extra


def _rclpy():
    try:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String
    except (ImportError, OSError) as exc:
        raise UserError(f"{MISSING} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") \
            from None
    return rclpy, SingleThreadedExecutor, String


def parameter_values(info: dict) -> dict:
    """The node's parameters from the stream's description: strings (empty for unknown), hop/window floats."""
    out = {}
    for key in PARAMETERS:
        value = info.get(key)
        if key in ("hop", "window"):
            out[key] = float(value) if isinstance(value, (int, float)) else 0.0
        else:
            out[key] = "" if value is None else str(value)
    return out


class Ros2Sink(Sink):
    """Publishes from the caller's thread; a background executor answers the parameter services."""

    name = "ros2"

    def __init__(self, info: dict | None = None, node_name: str = NODE_NAME, args: list[str] | None = None):
        self._rclpy, self._Executor, self._String = _rclpy()
        self.info = dict(info or {})
        self.node_name = node_name
        self.args = args
        self.on_status = lambda status: None
        self.node = self.context = self.executor = None
        self._thread: threading.Thread | None = None
        self._last_key = None
        self.sent = 0

    def start(self) -> None:
        rclpy = self._rclpy
        from rcl_interfaces.msg import ParameterDescriptor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        try:
            self.context = rclpy.Context()
            args = self.args if self.args is not None else DEFAULT_ARGS
            rclpy.init(args=["edge-ser", *args] if args else None, context=self.context)
            self.node = rclpy.create_node(self.node_name, context=self.context)
            for key, value in parameter_values(self.info).items():
                self.node.declare_parameter(key, value, ParameterDescriptor(
                    read_only=True, description=f"edge-ser listen's {key}"))
            self.pub_event = self.node.create_publisher(self._String, EVENT_TOPIC, QoSProfile(
                depth=50, reliability=ReliabilityPolicy.RELIABLE))
            self.pub_state = self.node.create_publisher(self._String, STATE_TOPIC, QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
            self.executor = self._Executor(context=self.context)
            self.executor.add_node(self.node)
        except UserError:
            raise
        except Exception as exc:  # no RMW implementation, bad --ros-args, ...
            self.close()
            raise UserError(f"--ros2: cannot start a ROS 2 node: {type(exc).__name__}: "
                            f"{(str(exc).splitlines() or [''])[0]}") from None
        self._thread = threading.Thread(target=self._spin, name="edge-ser-ros2", daemon=True)
        self._thread.start()
        log.info("ros2: node %s publishing %s and %s", self.node.get_fully_qualified_name(), EVENT_TOPIC,
                 STATE_TOPIC)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception as exc:  # the context shut down under us (close) or a ROS fault: publishing goes on
            log.debug("ros2 executor stopped: %s", exc)

    def publish(self, event: dict) -> None:
        self.pub_event.publish(self._String(data=json.dumps(event, default=str)))
        self.sent += 1
        if event.get("type") == "status":
            return
        key = (event.get("speech"), event.get("label"))
        if key != self._last_key:
            self._last_key = key
            self.pub_state.publish(self._String(data=json.dumps(state_of(event), default=str)))

    def close(self) -> None:
        rclpy = self._rclpy
        try:
            if self.executor is not None:
                self.executor.shutdown(timeout_sec=1.0)
            if self.node is not None:
                self.node.destroy_node()
            if self.context is not None and self.context.ok():
                rclpy.shutdown(context=self.context)
        except Exception as exc:
            log.debug("ros2 close: %s", exc)
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def summary(self) -> str:
        return f"ros2 {EVENT_TOPIC}: {self.sent} published"
