"""The streaming engine: hop timing, windows equal to the offline frontend, the speech gate, smoothing, bounded
memory."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import SR, harmonic_tone, tone_f0
from edge_ser.features import fit_frames
from edge_ser.frontend import log_mel
from edge_ser.registry import load_model
from edge_ser.stream import Engine, FrameRing, GateConfig, LoudestFrame, SmoothingConfig, SpeechGate, _dbfs


@pytest.fixture(scope="module")
def cnn(tiny_models):
    return load_model(tiny_models["cnn"])


def feed_in_chunks(engine, y, rng, max_chunk=3000):
    events, consumed_at = [], []
    i = 0
    while i < len(y):
        n = int(rng.integers(1, max_chunk))
        new = engine.feed(y[i:i + n])
        i += n
        events += new
        consumed_at += [min(i, len(y))] * len(new)
    return events, consumed_at


def speechy(seconds, rng, f0=200.0):
    """Tone bursts (syllables of 0.25 s separated by 0.1 s gaps) over quiet noise."""
    y = 0.001 * rng.standard_normal(int(seconds * SR)).astype(np.float32)
    pos = 0
    while pos + int(0.25 * SR) < len(y):
        y[pos:pos + int(0.25 * SR)] += harmonic_tone(f0, 0.25, rng, amp=0.3)
        pos += int(0.35 * SR)
    return y


def test_hop_timing_matches_audio_consumed(cnn, rng):
    engine = Engine(cnn, hop_seconds=0.5)
    y = speechy(4.3, rng)
    events, consumed = feed_in_chunks(engine, y, rng)
    assert [e.t for e in events] == pytest.approx([0.5 * k for k in range(1, 9)])
    for e, c in zip(events, consumed):
        assert e.t * SR <= c  # an event comes out of the feed call that completed its hop
    assert engine.samples == len(y)


def test_other_hop_and_one_sample_chunks(cnn, rng):
    engine = Engine(cnn, hop_seconds=0.25)
    y = speechy(1.3, rng)
    events = [ev for s in y for ev in engine.feed(s[None])]
    assert [e.t for e in events] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25])


@pytest.mark.parametrize("fill", ["stretch", "repeat"])
def test_window_equals_offline_frames(cnn, rng, fill):
    """The model sees exactly the offline log-mel frames of the audio heard so far (the last n_frames; fewer fill
    the window by ``GateConfig.fill``: stretched evenly, the default, or repeated from the first)."""
    engine = Engine(cnn, hop_seconds=0.5, smoothing=SmoothingConfig(alpha=1.0),
                    gate=GateConfig(enabled=False, min_speech_seconds=0, fill=fill))
    y = speechy(3.0, rng, f0=tone_f0(4))
    events, _ = feed_in_chunks(engine, y, rng)
    cfg = cnn.frontend
    offline = log_mel(y, cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.fmin, cfg.fmax, top_db=None)
    for e in events:
        first = int(round(e.window[0] * SR / cfg.hop_length))
        last = int(round(e.window[1] * SR / cfg.hop_length))
        assert last - first + 1 == min(cnn.n_frames, last + 1)
        assert (last * cfg.hop_length + cfg.n_fft // 2) <= e.t * SR  # only frames fully heard
        frames = offline[:, first:last + 1]
        frames = fit_frames(frames, cnn.n_frames, fill)  # its values per fill: tests/test_features.py
        expected = cnn.predict(cnn.input_for(frames)[None])[0]
        got = np.array([e.scores[lab] for lab in cnn.labels])
        np.testing.assert_allclose(got, expected, atol=2e-4)
    assert events[0].window[0] == 0.0 and events[-1].window[0] > 0  # early windows: frames so far


def test_frame_ring_fills_a_window_with_what_it_holds():
    from edge_ser.stream import FrameRing
    ring = FrameRing(2, 5, fill="repeat")
    assert ring.filled().shape == (2, 0)
    ring.extend(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    np.testing.assert_array_equal(ring.filled(), [[1, 2, 1, 2, 1], [3, 4, 3, 4, 3]])
    ring.extend(np.arange(14, dtype=np.float32).reshape(2, 7))
    np.testing.assert_array_equal(ring.filled(), ring.window())  # full: the last 5 frames, unchanged
    np.testing.assert_array_equal(ring.window()[0], [2, 3, 4, 5, 6])
    ring = FrameRing(2, 5)  # the default: stretched, as GateConfig's
    assert ring.fill == GateConfig.fill == "stretch"
    ring.extend(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    np.testing.assert_array_equal(ring.filled(), [[1, 1, 1, 2, 2], [3, 3, 3, 4, 4]])
    with pytest.raises(ValueError, match="pad"):
        FrameRing(2, 5, fill="zeros")


def test_silence_is_not_speech(cnn):
    engine = Engine(cnn)
    events = engine.feed(np.zeros(3 * SR, dtype=np.float32))
    assert len(events) == 6
    for e in events:
        d = e.to_dict()
        assert d["speech"] is False
        assert d["label"] is None and d["emotion"] is None and d["intensity"] is None and d["confidence"] is None


def test_quiet_noise_then_speech(cnn, rng):
    engine = Engine(cnn)
    noise = (0.003 * rng.standard_normal(4 * SR)).astype(np.float32)  # about -50 dBFS room noise
    quiet = engine.feed(noise)
    assert not any(e.speech for e in quiet)
    loud = engine.feed(speechy(2.0, rng) + 0.003 * rng.standard_normal(2 * SR).astype(np.float32))
    assert all(e.speech for e in loud)
    assert loud[0].label is None and loud[0].speech_seconds < 0.75  # not enough speech heard yet
    assert [e.speech_seconds for e in loud] == sorted(e.speech_seconds for e in loud)
    assert loud[-1].label is not None
    for e in loud:
        if e.label is None:
            assert e.speech_seconds < 0.75 and e.scores is None and e.confidence is None
            continue
        assert e.speech_seconds >= 0.75
        assert e.label in cnn.labels and e.emotion and e.intensity in ("low", "medium", "high")
        assert 0 < e.confidence <= 1 and abs(sum(e.scores.values()) - 1) < 1e-3


def test_noise_floor_adapts_to_a_loud_room(cnn, rng):
    """Steady fan noise well above min_level_db stops counting as speech once the floor has adapted."""
    engine = Engine(cnn)
    fan = (0.03 * rng.standard_normal(12 * SR)).astype(np.float32)  # about -30 dBFS
    events = engine.feed(fan)
    assert not any(e.speech for e in events[-10:])
    assert events[-1].noise_floor_db == pytest.approx(-27.5, abs=3)
    talk = speechy(2.0, rng) * 4 + 0.03 * rng.standard_normal(2 * SR).astype(np.float32)
    assert all(e.speech for e in engine.feed(talk.astype(np.float32)))


def test_smoothing_is_an_ema_reset_after_silence(tiny_models, rng):
    cnn = load_model(tiny_models["cnn"])
    raw = Engine(cnn, smoothing=SmoothingConfig(alpha=1.0, reset_after_silent_hops=2))
    ema = Engine(cnn, smoothing=SmoothingConfig(alpha=0.5, reset_after_silent_hops=2))
    y = np.concatenate([speechy(2.0, rng, f0=tone_f0(2)), speechy(1.5, rng, f0=tone_f0(9)),
                        np.zeros(SR, dtype=np.float32), speechy(1.0, rng, f0=tone_f0(9))])
    r, s = raw.feed(y), ema.feed(y)
    vec = lambda e: np.array([e.scores[lab] for lab in cnn.labels])  # noqa: E731
    prev, silent = None, 0
    for er, es in zip(r, s):
        assert er.speech == es.speech
        if not es.speech:
            silent += 1
            if silent >= 2:
                prev = None
            continue
        silent = 0
        assert (er.scores is None) == (es.scores is None)
        if es.scores is None:  # too little speech yet: nothing to smooth
            assert prev is None
            continue
        expected = vec(er) if prev is None else 0.5 * vec(er) + 0.5 * prev
        np.testing.assert_allclose(vec(es), expected, atol=2e-4)
        prev = vec(es)
    # after the 1 s of silence (2 silent hops) the average restarted: the first speech hop equals the raw scores
    after = [i for i in range(1, len(s)) if s[i].scores is not None and s[i - 1].scores is None]
    assert len(after) >= 2, "the test signal has a silence followed by speech"
    np.testing.assert_allclose(vec(s[after[-1]]), vec(r[after[-1]]), atol=2e-4)


def test_memory_is_bounded(cnn, rng):
    engine = Engine(cnn)
    ring_buf = engine.ring._buf
    for _ in range(60):
        engine.feed((0.01 * rng.standard_normal(SR)).astype(np.float32))
    assert engine.ring._buf is ring_buf and ring_buf.shape == (cnn.frontend.n_mels, cnn.n_frames)
    assert len(engine.frontend._buffer) < cnn.frontend.n_fft + SR
    assert engine.hops == 120


def test_events_iterator_duration_and_callback(cnn, rng):
    blocks = [speechy(0.3, rng) for _ in range(20)]  # 6 s
    engine = Engine(cnn)
    got = []
    n = engine.run(iter(blocks), got.append, duration=2.0)
    assert n == 4 and [e.t for e in got] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert engine.samples == 2 * SR


def test_frame_ring_order():
    ring = FrameRing(2, 5)
    frames = np.arange(14, dtype=np.float32)[None].repeat(2, 0)
    ring.extend(frames[:, :3])
    np.testing.assert_array_equal(ring.window()[0], [0, 1, 2])
    ring.extend(frames[:, 3:7])
    np.testing.assert_array_equal(ring.window()[0], [2, 3, 4, 5, 6])
    ring.extend(frames[:, 7:14])
    np.testing.assert_array_equal(ring.window()[0], [9, 10, 11, 12, 13])


def test_gate_levels(rng):
    gate = SpeechGate(GateConfig())
    gate.push((0.001 * rng.standard_normal(SR)).astype(np.float32))  # -57 dBFS
    speech, level, floor = gate.decide()
    assert not speech and level == pytest.approx(-57.0, abs=0.5) and floor == pytest.approx(-57.0, abs=1.5)
    t = np.arange(SR // 2) / SR
    gate.push((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    speech, level, floor = gate.decide()
    assert speech and level == pytest.approx(-6.0, abs=0.2)  # a 0.5-amplitude sine is -6 dBFS
    # a steady sound from the start (a fan, a beep) is its own floor: not speech
    steady = SpeechGate(GateConfig())
    steady.push((0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32))
    assert steady.decide()[0] is False


def test_gate_on_real_speech_in_noise(tiny_models, cremad_clips):
    """Real clips between 1.5 s stretches of -50 dBFS white noise: hops inside the speech are speech, hops in the
    noise are not (the gate measured on 100 CREMA-D clips this way: 96.7% of speech hops, 0 false alarms)."""
    from edge_ser.audio import load_audio
    engine = Engine(load_model(tiny_models["rfc"]))
    rng = np.random.default_rng(0)
    pad = int(1.5 * SR)
    hits = total = 0
    for clip in cremad_clips:
        y = load_audio(clip)
        x = np.concatenate([np.zeros(pad, np.float32), y, np.zeros(pad, np.float32)])
        x += (10 ** (-50 / 20) * rng.standard_normal(len(x))).astype(np.float32)
        start = engine.seconds
        for e in engine.feed(x):
            t1 = e.t - start
            if t1 <= 1.5:
                assert not e.speech, (clip.name, e.t)
            elif t1 - 0.5 >= 2.0 and t1 <= 1.5 + len(y) / SR - 0.5:
                total += 1
                hits += e.speech
    assert total >= 5 and hits >= 0.8 * total


def test_loudest_frame_whatever_the_blocks(rng):
    """`classify`'s silence check: the loudest 512-sample frame (a last partial frame included), the same however
    the audio is cut into blocks, at the level the speech gate measures."""
    y = rng.normal(0, 1e-4, 16000 + 100)
    y[5000:5512] = 0.25 * np.sin(np.arange(512))  # one loud frame, not aligned to a frame boundary
    frames = [y[i:i + 512] for i in range(0, len(y), 512)]
    want = max(_dbfs(f) for f in frames)
    for block in (1, 333, 512, 7000, len(y)):
        loud = LoudestFrame()
        for i in range(0, len(y), block):
            loud.push(y[i:i + block])
        assert loud.level_db == pytest.approx(want, abs=1e-9)
    end = LoudestFrame()
    end.push(np.r_[np.zeros(1024), 0.5 * np.ones(100)])  # loud only in the last, partial frame: zero-padded
    assert end.level_db == pytest.approx(_dbfs(np.r_[0.5 * np.ones(100), np.zeros(412)]))
    click = LoudestFrame()
    click.push(np.r_[np.zeros(16000), 0.001 * np.ones(5)])  # measured as a whole (zero-padded) frame: -82 dBFS,
    assert click.level_db < GateConfig().min_level_db < _dbfs(0.001 * np.ones(5))  # not -57 as 5 samples alone
    assert click.active_seconds == 0.0
    half = LoudestFrame()
    half.push(np.r_[0.1 * np.ones(8000), np.zeros(8000)])
    assert half.active_seconds == pytest.approx(8192 / SR)  # 16 frames of 512 hold some of the tone
    assert LoudestFrame().level_db == _dbfs(np.zeros(512)) < GateConfig().min_level_db  # nothing heard: silent
