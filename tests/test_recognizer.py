"""The Python entry point `edge_ser.Recognizer`: feed any dtype/rate/channel layout and get the same events, clear
ValueErrors for what is not audio, wall-clock ``ts``, classify with the silence rule, subscribers, a light import.

Audio: the package's own sample (edge_ser/assets/sample.wav, a real speech clip), with the shipped default model
(fine16-cnn), so these run on any checkout without the corpora.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import edge_ser
from edge_ser.errors import InvalidAudio, ModelError, UserError

from conftest import REPO

SAMPLE = REPO / "edge_ser" / "assets" / "sample.wav"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """~9 s of 16 kHz float speech: the sample, a pause, the sample quieter, the sample again."""
    y, sr = sf.read(SAMPLE, dtype="float32")
    assert sr == 16000
    return np.concatenate([y, np.zeros(8000, np.float32), 0.5 * y, y])


@pytest.fixture(scope="module")
def rec_factory():
    return lambda **kw: edge_ser.Recognizer(**kw)


def feed_blocks(rec, audio, rate, block_seconds=0.1):
    n = max(1, int(rate * block_seconds))
    events = []
    for i in range(0, len(audio), n):
        events += rec.feed(audio[i:i + n], sample_rate=rate)
    return events + rec.flush()


def robot_mic(y16: np.ndarray) -> np.ndarray:
    """The same audio as a robot's microphone gives it: 48 kHz, int16, two (equal) channels."""
    y48 = soxr.resample(y16.astype(np.float64), 16000, 48000, quality="HQ")
    pcm = np.clip(np.round(y48 * 32767), -32768, 32767).astype(np.int16)
    return np.stack([pcm, pcm], axis=1)


# --- the same events whatever the format -------------------------------------------------------------------

def test_default_model_is_what_listen_picks(rec_factory):
    from edge_ser.recognizer import choose_settings
    rec = rec_factory()
    s = choose_settings()
    assert rec.model.name == Path(s.model).name and rec.model.format == (s.fmt or rec.model.format)
    assert rec.hop == 0.5
    info = rec.info()
    assert info["model"] == rec.model.name and info["labels"] == rec.model.labels and info["hop_seconds"] == 0.5


def test_int16_48k_stereo_gives_the_events_of_float_16k(rec_factory, speech):
    """A robot microphone's int16 48 kHz stereo stream and the float 16 kHz mono original: same labels, times
    within a hop (here: equal), confidences close."""
    ref = feed_blocks(rec_factory(), speech, 16000)
    mic = feed_blocks(rec_factory(), robot_mic(speech), 48000, block_seconds=0.02)  # 20 ms device blocks
    assert len(ref) == len(mic) == int(np.ceil(len(speech) / 8000))
    # the model scores the frames the speech detector keeps: a frame at its threshold may go either way after
    # resampling and int16, so a label may differ on a hop or two (edge_ser.vad)
    same = [a.label == b.label for a, b in zip(mic, ref)]
    assert np.mean(same) >= 0.85, (same, [e.label for e in mic], [e.label for e in ref])
    assert [e.speech for e in mic] == [e.speech for e in ref]
    for a, b in zip(ref, mic):
        assert abs(a.t - b.t) < 0.5
        # where the detector kept the same frames (same window, same speech heard) the model saw the same input
        same_frames = np.allclose(a.window, b.window, atol=0.04) and a.speech_seconds == pytest.approx(
            b.speech_seconds, abs=0.04)
        if a.confidence is not None and b.confidence is not None and a.label == b.label and same_frames:
            assert abs(a.confidence - b.confidence) < 0.1, (a.t, a.confidence, b.confidence)
    assert mic[-1].t == pytest.approx(len(speech) / 16000, abs=1e-3)
    # what the engine gave int16 before the facade scaled it: the same top label at ~1.0 on every hop
    spoken = [e for e in mic if e.speech and e.label is not None]
    assert len(spoken) >= 10 and np.mean([e.confidence >= 0.99 for e in spoken]) < 0.5
    assert np.ptp([e.confidence for e in spoken]) > 0.1  # the scores follow the audio, not pinned at one value


def test_facade_at_16k_float_equals_the_engine(rec_factory, speech):
    from edge_ser.stream import Engine
    rec = rec_factory()
    engine = Engine(rec.model, hop_seconds=0.5)
    want = engine.feed(speech) + engine.finish()
    got = rec.feed(speech, 16000) + rec.flush()
    assert [(e.t, e.label, e.confidence) for e in got] == [(e.t, e.label, e.confidence) for e in want]


@pytest.mark.parametrize("rate, dtype", [(44100, "float32"), (8000, "int32"), (22050, "float64")])
def test_any_rate_and_dtype_keeps_the_audio_clock(rec_factory, speech, rate, dtype):
    y = soxr.resample(speech.astype(np.float64), 16000, rate, quality="HQ")
    if dtype == "int32":
        y = np.round(np.clip(y, -1, 1) * (2 ** 31 - 1)).astype(np.int32)
    else:
        y = y.astype(dtype)
    events = feed_blocks(rec_factory(), y, rate, block_seconds=0.037)
    ts = [e.t for e in events]
    assert ts[:-1] == pytest.approx([0.5 * (k + 1) for k in range(len(ts) - 1)], abs=1e-6)
    assert ts[-1] == pytest.approx(len(y) / rate, abs=0.01)
    assert sum(e.speech for e in events) >= 10


def test_rate_change_mid_stream(rec_factory, speech):
    rec = rec_factory()
    half = len(speech) // 2
    second = soxr.resample(speech[half:].astype(np.float64), 16000, 48000, quality="HQ").astype(np.float32)
    events = rec.feed(speech[:half], 16000) + rec.feed(second, 48000) + rec.flush()
    assert events[-1].t == pytest.approx(len(speech) / 16000, abs=1e-3)
    assert [e.t for e in events[:-1]] == pytest.approx([0.5 * (k + 1) for k in range(len(events) - 1)])


# --- what is not audio: one short ValueError ---------------------------------------------------------------

MARK = 0.123456789  # in every bad array: a message that printed the data would show it


@pytest.mark.parametrize("samples, rate, needle", [
    (np.full(1000, MARK, np.float32).tobytes(), 16000, "not bytes"),
    (bytearray(2000), 16000, "not bytearray"),
    (memoryview(bytes(2000)), 16000, "not memoryview"),
    ("0.1 0.2", 16000, "not str"),
    ({"a": 1}, 16000, "not dict"),
    (np.full(1000, 7, np.int8), 16000, "got int8"),
    (np.full(1000, 7, np.uint8), 16000, "got uint8"),
    (np.full(1000, 7, np.int64), 16000, "got int64"),
    (np.ones(1000, bool), 16000, "got bool"),
    (np.full(1000, MARK, np.complex64), 16000, "got complex64"),
    (np.array([MARK, "x"], dtype=object), 16000, "got object"),
    (np.array([MARK] * 999 + [np.nan], np.float32), 16000, "NaN or infinite"),
    (np.array([MARK] * 999 + [np.inf], np.float64), 16000, "NaN or infinite"),
    (np.full(1000, MARK, np.float32) * 32767, 16000, "must be in [-1, 1]"),
    (np.full((2, 48000), MARK, np.float32), 16000, "pass samples.T"),
    (np.full((10, 2, 2), MARK, np.float32), 16000, "3 dimensions"),
    (np.full(1000, MARK, np.float32), 0, "positive"),
    (np.full(1000, MARK, np.float32), -16000, "positive"),
    (np.full(1000, MARK, np.float32), float("nan"), "positive"),
    (np.full(1000, MARK, np.float32), 16000.5, "whole number"),
    (np.full(1000, MARK, np.float32), 10, "from 1000"),
    (np.full(1000, MARK, np.float32), "16000", "number of Hz"),
    (np.full(1000, MARK, np.float32), True, "number of Hz"),
    (np.full(1000, MARK, np.float32), None, "number of Hz"),
])
def test_bad_input_is_one_short_value_error(rec_factory, samples, rate, needle):
    rec = rec_factory()
    with pytest.raises(ValueError) as info:
        rec.feed(samples, sample_rate=rate)
    message = str(info.value)
    assert isinstance(info.value, InvalidAudio) and isinstance(info.value, UserError)
    assert needle in message, message
    assert len(message) < 200 and "\n" not in message, message
    assert "0.1234" not in message and "\\x00" not in message and "[[" not in message, message
    assert len(rec.feed(np.zeros(8000, np.float32))) == 1  # the recognizer goes on: one hop
    if not isinstance(samples, (bytes, bytearray, memoryview, str, dict)) and rate == 16000:
        with pytest.raises(ValueError):
            rec.classify(samples)


def test_accepted_layouts(rec_factory):
    rec = rec_factory()
    assert rec.feed(np.zeros(0, np.int16)) == []
    assert rec.feed(np.zeros((0, 2), np.float32), 48000) == []
    assert rec.feed([0.0] * 100) == []  # a list of floats
    assert len(rec.feed(np.zeros((8000, 6), np.int16), 16000)) == 1  # a 6-channel array (ReSpeaker-like)
    assert rec.feed(np.float32(0.0).reshape(1), 16000) == []
    with pytest.raises(ValueError, match="0 dimensions"):
        rec.feed(np.float32(0.0))


def test_bad_options(rec_factory):
    with pytest.raises(UserError, match="hop"):
        rec_factory(hop=0)
    with pytest.raises(ModelError, match="unknown model 'no-such-model'"):
        rec_factory(model="no-such-model")
    with pytest.raises(UserError, match="unknown profile"):
        rec_factory(profile="no-such-board")


# --- ts: wall-clock time beside t --------------------------------------------------------------------------

def test_ts_is_wall_clock_time_close_to_now(rec_factory, speech):
    rec = rec_factory()
    for i in range(0, 16000 * 3, 1600):  # 0.1 s blocks as they would arrive from a device
        for e in rec.feed(speech[i:i + 1600]):
            now = time.time()
            d = e.to_dict()
            assert set(d) >= {"t", "ts", "window", "speech", "label", "emotion", "intensity", "confidence",
                              "latency_ms"}
            assert isinstance(d["ts"], float) and abs(d["ts"] - now) < 1.0, (d["ts"], now)
            assert d["ts"] <= now + 1e-3


def test_ts_never_goes_backwards_when_audio_comes_faster_than_real_time(rec_factory, speech):
    """stdin or a replay hands over seconds of audio at once, in blocks of uneven size: each event's ts is when
    its hop was heard as far as the clock can tell, and the times only move forward."""
    rec = rec_factory()
    audio = np.concatenate([speech, speech])
    sizes = [40000, 3000, 70000, 1600, 16000 * 4]
    events, i, k = [], 0, 0
    while i < len(audio):
        n = sizes[k % len(sizes)]
        events += rec.feed(audio[i:i + n])
        i, k = i + n, k + 1
    events += rec.flush()
    ts = [e.ts for e in events]
    assert len(ts) >= 10 and all(b >= a for a, b in zip(ts, ts[1:])), ts
    assert ts[-1] <= time.time() + 1e-3


def test_ts_from_a_capture_timestamp(rec_factory, speech):
    """``timestamp``: when the last sample given was captured; each event's ts is that minus the audio after it."""
    rec = rec_factory()
    t0 = 1_700_000_000.0
    events = []
    for k, i in enumerate(range(0, len(speech), 4000)):
        block = speech[i:i + 4000]
        events += rec.feed(block, 16000, timestamp=t0 + (i + len(block)) / 16000)
    assert len(events) >= 15
    for e in events:
        assert e.ts == pytest.approx(t0 + e.t, abs=1e-6)
    assert json.loads(json.dumps(events[0].to_dict()))["ts"] == pytest.approx(t0 + 0.5, abs=1e-3)


# --- classify -----------------------------------------------------------------------------------------------

def test_classify_file_and_array_agree(rec_factory, tmp_path, speech):
    rec = rec_factory()
    y, _ = sf.read(SAMPLE, dtype="float32")
    from_file = rec.classify(SAMPLE)
    from_array = rec.classify(y, sample_rate=16000)
    from_mic = rec.classify(robot_mic(y), sample_rate=48000)
    assert from_file.label == from_array.label == from_mic.label
    assert from_array.scores == pytest.approx(from_file.scores, abs=1e-3)
    assert from_mic.confidence == pytest.approx(from_file.confidence, abs=0.05)
    d = from_file.to_dict()
    assert set(d) >= {"path", "label", "emotion", "intensity", "confidence", "scores", "model", "duration_s"}
    assert d["path"] == str(SAMPLE) and d["duration_s"] == pytest.approx(len(y) / 16000, abs=1e-3)
    assert from_array.path is None and from_mic.duration_s == pytest.approx(len(y) / 16000, abs=1e-3)


def test_silence_rule_lives_in_the_library(rec_factory, tmp_path):
    """Nothing above the gate's minimum level (-70 dBFS): silence, no emotion, for files and arrays alike
    (the model alone, `Model.classify_audio`, would still name an emotion)."""
    rec = rec_factory()
    quiet = (10 ** (-80 / 20) * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    sf.write(tmp_path / "quiet.wav", quiet, 16000)
    for r in (rec.classify(np.zeros(16000, np.int16)), rec.classify(quiet), rec.classify(tmp_path / "quiet.wav")):
        assert r.silent and r.label is None and r.emotion is None and r.scores is None
        assert r.loudest_dbfs < -70
    loud = rec.classify(SAMPLE)
    assert not loud.silent and loud.label in rec.model.labels
    assert rec.model.describe(rec.model.classify_audio(np.zeros(16000, np.float32)))["label"] is not None


def test_classify_files_goes_on_past_bad_files(rec_factory, tmp_path):
    rec = rec_factory()
    (tmp_path / "notes.txt").write_text("not audio")
    got = list(rec.classify_files([SAMPLE, tmp_path / "missing.wav", tmp_path / "notes.txt", SAMPLE],
                                  adapt="together"))
    assert [type(r).__name__ for _, r in got] == ["Result", "AudioError", "AudioError", "Result"]
    assert "no such file" in str(got[1][1])
    with pytest.raises(UserError, match="adapt"):
        rec.classify(SAMPLE, adapt="together")
    with pytest.raises(UserError, match="sample_rate is for arrays"):
        rec.classify(SAMPLE, sample_rate=16000)


# --- subscribers ---------------------------------------------------------------------------------------------

def test_subscribers_get_every_event_and_a_failing_one_does_not_stop_the_stream(rec_factory, speech, caplog):
    rec = rec_factory()
    seen = []
    stop = rec.subscribe(seen.append)
    rec.subscribe(lambda item: 1 / 0)
    events = feed_blocks(rec, speech, 16000)
    assert seen == events and len(events) >= 15
    assert "subscriber" in caplog.text
    stop()
    rec.feed(speech[:8000])
    assert len(seen) == len(events)


def test_events_from_a_source(rec_factory, speech):
    from edge_ser.stream import StatusEvent

    def source():
        yield speech[:16000]
        yield StatusEvent("overflow", "1 block lost", details={"overflows": 1})
        yield speech[16000:32000]

    rec = rec_factory()
    items = list(rec.events(source()))
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Event", "Event", "StatusEvent", "Event", "Event"]
    status = items[2].to_dict()
    assert status["type"] == "status" and status["state"] == "overflow" and status["overflows"] == 1
    assert status["t"] == 1.0 and abs(status["ts"] - time.time()) < 5
    assert [i.t for i in items if not isinstance(i, StatusEvent)] == [0.5, 1.0, 1.5, 2.0]
    assert list(rec.events(iter([speech[:16000]]), duration=0.5))[-1].t == 0.5
    glitch = speech[:8000].copy()
    glitch[100:200] = np.nan  # a driver's bad block: listen goes on
    assert [e.t for e in rec.events(iter([glitch, speech[8000:16000]]))] == [0.5, 1.0]


# --- the package's import ------------------------------------------------------------------------------------

def test_import_is_light_and_exposes_the_api():
    code = ("import sys, os; import edge_ser; assert 'numpy' not in sys.modules, 'numpy'; "
            "assert os.environ['OPENBLAS_NUM_THREADS'] == '1'; "
            "from edge_ser import Recognizer, Event, Result, StatusEvent, load_model; "
            "import edge_ser.recognizer as r, edge_ser.stream as s, edge_ser.registry as g; "
            "assert Recognizer is r.Recognizer and Event is s.Event and load_model is g.load_model; "
            "assert 'Recognizer' in dir(edge_ser); print('ok')")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        edge_ser.Nope
