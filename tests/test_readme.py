"""README.md: short, and its Python example's output is what the example prints (regenerate the block with
``EDGE_SER_UPDATE_README=1 python -m pytest tests/test_readme.py``)."""
from __future__ import annotations

import contextlib
import io
import os
import re

from conftest import REPO

README = REPO / "README.md"
BEGIN, END = "<!-- BEGIN python-example -->", "<!-- END python-example -->"
MAX_BYTES = 15 * 1024

# The example, run from the repository's root; its printed output follows it in the README.
EXAMPLE = '''\
import soundfile as sf
import edge_ser

rec = edge_ser.Recognizer()                          # the model `edge-ser listen` picks on this machine
result = rec.classify("edge_ser/assets/sample.wav")  # a whole file (or an array with sample_rate=)
print(result.emotion, result.intensity, result.confidence)

audio, rate = sf.read("edge_ser/assets/sample.wav", dtype="int16")
for event in rec.feed(audio, sample_rate=rate) + rec.flush():   # microphone blocks: any dtype, rate, channels
    print(f"{event.t:.1f} s", event.speech, event.label, event.confidence)
'''


def _block(output: str) -> str:
    return f"{BEGIN}\n```python\n{EXAMPLE}```\n```\n{output}```\n{END}"


def _run() -> str:
    buf = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        with contextlib.redirect_stdout(buf):
            exec(compile(EXAMPLE, "README example", "exec"), {})
    finally:
        os.chdir(cwd)
    return buf.getvalue()


def test_readme_is_short():
    assert README.stat().st_size <= MAX_BYTES, f"README.md is {README.stat().st_size} bytes (at most {MAX_BYTES})"


def test_python_example_output_is_current():
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    expected = _block(_run())
    current = text[text.index(BEGIN):text.index(END) + len(END)]
    if os.environ.get("EDGE_SER_UPDATE_README") and current != expected:
        README.write_text(text.replace(current, expected), encoding="utf-8")
        current = expected
    assert current == expected, "README example is stale: EDGE_SER_UPDATE_README=1 pytest tests/test_readme.py"


def test_readme_commands_exist():
    """Every `edge-ser COMMAND` the README names is a command of the CLI."""
    from edge_ser.cli import app
    commands = {c.name for c in app.registered_commands}
    named = set(re.findall(r"`edge-ser ([a-z][a-z0-9-]+)", README.read_text(encoding="utf-8")))
    named |= set(re.findall(r"edge-ser ([a-z][a-z0-9-]+) ", README.read_text(encoding="utf-8")))
    assert named and named <= commands | {"train"}, named - commands
