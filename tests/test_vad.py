"""edge_ser.vad and the speech gate in a real room: speech-like sounds in noise, digital silence and clipped bursts at
the start, gain invariance (detector, adaptation prior, classify and listen), onset events, listen's options."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SR, harmonic_tone
from edge_ser.adapt import SpeakerNorm, gain_mask, gain_slopes
from edge_ser.cli import main as cli_main
from edge_ser.errors import UserError
from edge_ser.registry import load_model
from edge_ser.stream import Engine, GateConfig, SpeechGate
from edge_ser.vad import SILENT_DBFS, SpectralDetector

from benchmarks.noisy_sessions import pink  # the benchmark's fan noise: unit-RMS pink noise

HOP = SR // 2
SAMPLE = Path(__file__).resolve().parents[1] / "edge_ser" / "assets" / "sample.wav"


def syllables(seconds: float, rng, f0: float = 180.0) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like audio: voiced syllables of 0.2 s (syllable-rate level changes, changing pitch) and 0.1 s pauses;
    returns (audio, per-sample truth)."""
    y = np.zeros(int(seconds * SR), np.float32)
    truth = np.zeros(len(y), bool)
    pos = 0
    while pos + int(0.2 * SR) <= len(y):
        s = harmonic_tone(f0 * rng.uniform(0.85, 1.2), 0.2, rng, amp=0.3, noise=0.0)
        s *= np.hanning(len(s)).astype(np.float32) ** 0.5
        y[pos:pos + len(s)] = s
        truth[pos:pos + len(s)] = True
        pos += int(0.3 * SR)
    return y, truth


def gate_hops(y: np.ndarray, cfg: GateConfig = GateConfig()) -> np.ndarray:
    gate = SpeechGate(cfg)
    out = []
    for k in range(len(y) // HOP):
        gate.push(y[k * HOP:(k + 1) * HOP])
        out.append(gate.decide()[0])
    return np.array(out)


def at_snr(speech: np.ndarray, truth: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    p = np.mean(speech[truth] ** 2)
    return (speech + noise * np.sqrt(p / 10 ** (snr_db / 10) / np.mean(noise ** 2))).astype(np.float32)


def session(rng, snr_db: float, gain: float = 1.0):
    """4 s of noise, then 3 x (3 s of syllables, 2 s of noise): audio and hop truth (1 speech, 0 gap, -1 edge)."""
    parts, truths = [np.zeros(4 * SR, np.float32)], [np.zeros(4 * SR, bool)]
    for _ in range(3):
        s, t = syllables(3.0, rng)
        parts += [s, np.zeros(2 * SR, np.float32)]
        truths += [t, np.zeros(2 * SR, bool)]
    speech, truth = np.concatenate(parts), np.concatenate(truths)
    y = gain * at_snr(speech, truth, pink(len(speech), rng), snr_db)
    hops = []
    for k in range(len(y) // HOP):
        share = truth[k * HOP:(k + 1) * HOP].mean()
        hops.append(1 if share > 0.3 else 0 if share == 0 and not truth[max(0, k * HOP - SR // 4):
                                                                        (k + 1) * HOP + SR // 4].any() else -1)
    return y, np.array(hops)


@pytest.mark.parametrize("snr_db", [20, 10])
def test_speech_like_sound_in_pink_noise(rng, snr_db):
    y, hops = session(rng, snr_db)
    d = gate_hops(y)
    assert d[hops == 1].mean() >= 0.9, d[hops == 1].mean()
    assert d[hops == 0].mean() <= 0.05
    old = gate_hops(y, GateConfig(vad="energy", margin_db=8.0, min_level_db=-55.0, floor_guard=False,
                                  floor_seconds=8.0))
    assert d[hops == 1].mean() >= old[hops == 1].mean()  # at least as good as the original energy gate


def test_steady_noise_alone_is_not_speech(rng):
    for noise in (pink(10 * SR, rng) * 0.03, (0.03 * rng.standard_normal(10 * SR)).astype(np.float32)):
        d = gate_hops(noise)
        assert not d[1:].any()  # the first hop learns the floor


def test_digital_silence_at_the_start_is_never_the_floor(rng):
    """0.5 s (or 3 s) of zeros, then steady noise at -30 dBFS: not speech, and the floor is the noise's."""
    for zeros in (SR // 2, 3 * SR):
        y = np.concatenate([np.zeros(zeros, np.float32), 0.03 * pink(8 * SR, rng)])
        gate = SpeechGate(GateConfig())
        decisions = []
        for k in range(len(y) // HOP):
            gate.push(y[k * HOP:(k + 1) * HOP])
            decisions.append(gate.decide())
        start = zeros // HOP
        assert not any(s for s, _, _ in decisions[start + 1:])
        assert decisions[-1][2] == pytest.approx(-30.5, abs=3)  # dBFS of the noise, not -120
    # the original gate (floor_guard off) learnt from the zeros: the noise was "speech" for seconds
    y = np.concatenate([np.zeros(SR // 2, np.float32), 0.03 * pink(8 * SR, rng)])
    old = gate_hops(y, GateConfig(vad="energy", margin_db=8.0, min_level_db=-55.0, floor_guard=False,
                                  floor_seconds=8.0))
    assert old.sum() >= 4
    assert not gate_hops(y, GateConfig(vad="energy"))[2:].any()  # the guarded energy gate does not


def test_clipped_bursts_do_not_move_the_floor(rng):
    det = SpectralDetector(GateConfig(), 0.032)
    noise = 0.01 * pink(4 * SR, rng)
    gate = SpeechGate(GateConfig())
    for k in range(len(noise) // HOP):
        gate.push(noise[k * HOP:(k + 1) * HOP])
        gate.decide()
    before = gate.noise_floor
    knock = np.clip(5.0 * rng.standard_normal(3 * SR), -1, 1).astype(np.float32)  # 3 s of full-scale clipping
    for k in range(len(knock) // HOP):
        gate.push(knock[k * HOP:(k + 1) * HOP])
        gate.decide()
    assert gate.noise_floor == pytest.approx(before, abs=1.0)
    assert det.noise_floor == -120.0 and SILENT_DBFS == -100.0


def test_detector_is_gain_invariant(rng):
    y, hops = session(rng, 15)
    loud, quiet = gate_hops(y), gate_hops(0.1 * y)
    assert (loud == quiet).mean() >= 0.97


def test_noise_switched_on_stops_being_speech(rng):
    """A fan switched on (40 dB louder) after quiet room noise: speech at most for the floor's memory (3 s)."""
    y = np.concatenate([0.0003 * pink(4 * SR, rng), 0.03 * pink(10 * SR, rng)])
    d = gate_hops(y)
    assert d[8:].sum() <= 7 and not d[-6:].any()


def test_a_step_in_the_noise_after_speech_is_noise_at_once(rng, monkeypatch):
    """Speech, then a fan 15 dB under it (a louder room: the next recording, a fan switched on): a steady stretch
    smooth across bands restarts the floors, so the fan is not speech from its first hop (it was for 2 s, until the
    3 s floor memory caught up).  A steady voice-like tone at the same level is not such a step: its harmonics are
    not smooth across bands, so it stays speech."""
    room = 0.001 * pink(3 * SR, rng)
    s, t = syllables(1.5, rng)
    s = s + 0.001 * pink(len(s), rng)
    under = np.sqrt(np.mean(s[t] ** 2)) * 10 ** (-15 / 20)
    fan = np.concatenate([room, s, under * pink(6 * SR, rng)]).astype(np.float32)
    tone = np.concatenate([room, s, harmonic_tone(220.0, 6.0, rng, amp=0.3 * 10 ** (-15 / 20))])
    start = (len(room) + len(s)) // HOP  # the first hop of the fan / tone
    assert gate_hops(fan)[6:start].all()  # the speech
    assert not gate_hops(fan)[start:].any()
    assert gate_hops(tone)[start:start + 3].all()
    # a steady sound as loud as the speech is not taken for a step (steady speech in loud noise is not one):
    # it is left to the floors' memory, as before the rule; without the guard it would be a step
    level = np.concatenate([room, s, 3 * under * pink(6 * SR, rng)]).astype(np.float32)
    assert gate_hops(level)[start:start + 3].all()
    monkeypatch.setattr("edge_ser.vad.STEP_BELOW_DB", -1000.0)
    assert not gate_hops(level)[start + 1:].any()
    monkeypatch.undo()
    monkeypatch.setattr("edge_ser.vad.SMOOTH_DB", -1.0)  # no stretch is smooth enough: the rule is off
    assert gate_hops(fan)[start:start + 3].all()


def test_real_clips_in_pink_noise(cremad_clips):
    from edge_ser.audio import load_audio
    rng = np.random.default_rng(3)
    parts, truth, inside = [], [], []
    gap = 2 * SR
    for clip in cremad_clips[:8] * 2:
        y = load_audio(clip)
        lv = 10 * np.log10(np.mean(y[:len(y) // 512 * 512].reshape(-1, 512) ** 2, axis=1) + 1e-12)
        act = np.repeat(lv > max(lv.max() - 35, np.percentile(lv, 10) + 6), 512)
        parts += [np.zeros(gap, np.float32), y[:len(act)]]
        truth += [np.zeros(gap, bool), act]
        inside += [np.zeros(gap, bool), np.ones(len(act), bool)]  # the clip, its own room noise included
    speech, t, clip_part = np.concatenate(parts), np.concatenate(truth), np.concatenate(inside)
    for snr in (20, 10):
        y = at_snr(speech, t, pink(len(speech), rng), snr)
        d = gate_hops(y)
        n = len(d)
        share = t[:n * HOP].reshape(n, HOP).mean(axis=1)
        away = ~np.convolve(clip_part, np.ones(SR // 2, bool), "same")[:n * HOP].reshape(n, HOP).any(axis=1)
        assert d[share > 0.3].mean() >= (0.9 if snr == 20 else 0.75)
        assert d[away].mean() <= 0.1


# --- loudness invariance -----------------------------------------------------------------------------------------

def test_level_invariant_prior(rng):
    pop = rng.normal(size=(300, 8, 5)) * 3 - 40
    norm = SpeakerNorm.fit_population(pop, (1,), 10.0)
    fixed = SpeakerNorm.fit_population(pop, (1,), 10.0)
    norm.level_slope = np.ones(norm.mean.shape)
    x = rng.normal(size=(2, 8, 5)) * 3 - 40
    for stats_of in (lambda v: None, lambda v: norm.stats().update(v)):
        a = norm.apply(x, stats_of(x))
        b = norm.apply(x - 20, stats_of(x - 20))
        np.testing.assert_allclose(a, b, atol=1e-4)
    # without a level mask (the earlier prior) a quieter voice reads as lower
    assert fixed.apply(x - 20, fixed.stats().update(x - 20)).mean() < fixed.apply(x, fixed.stats().update(x)).mean() - 1


def _speech_image(rng, n=4, mels=16, frames=40):
    """Log-mel-like windows (dB): syllables 45 dB above silence, a spectral tilt."""
    on = (np.arange(frames) // 5) % 2 == 0
    tilt = -np.linspace(0.0, 30.0, mels)[:, None]
    x = np.where(on[None, :], -20.0, -75.0) + tilt + 2.0 * rng.standard_normal((n, mels, frames))
    return x[..., None]


def test_window_level_offset_is_a_gain_and_hardly_moves_in_noise(rng):
    """With a level_ref the offset comes from window power levels: a gain moves it by the gain (the standardised
    input is unchanged), additive noise 10 dB under the speech by < 1 dB where the mean of the dB values moves by
    several dB (the earlier offset, which read a noisy clip as a quiet one)."""
    pop = _speech_image(rng, 200)
    norm = SpeakerNorm.fit_population(pop, (1, 2), 10.0)
    norm.level_slope = np.ones(norm.mean.shape)
    old = SpeakerNorm.fit_population(pop, (1, 2), 10.0)
    old.level_slope = norm.level_slope
    norm.set_level_ref(pop)
    assert norm.level_ref is not None and old.level_ref is None
    x = _speech_image(rng, 3)
    for stats_of in (lambda v: None, lambda v: norm.stats().update(v)):
        np.testing.assert_allclose(norm.apply(x, stats_of(x)), norm.apply(x - 20, stats_of(x - 20)), atol=1e-4)
    np.testing.assert_allclose(norm.window_levels(x - 20), norm.window_levels(x) - 20, atol=1e-9)
    speech_power = np.mean(10 ** (x / 10))
    noisy = 10 * np.log10(10 ** (x / 10) + 0.1 * speech_power)  # white noise at 10 dB SNR, power domain
    moved_new = norm.stats().update(noisy).level_offset() - norm.stats().update(x).level_offset()
    moved_old = old.stats().update(noisy).level_offset() - old.stats().update(x).level_offset()
    assert 0 < moved_new < 1.0 and moved_old > 5.0
    assert abs(norm.input_offset(noisy) - norm.stats().update(noisy).level_offset()) < 1e-9
    # merged statistics carry the levels too
    both = norm.stats().update(x).merge(norm.stats().update(noisy))
    assert both.level_offset() == pytest.approx(norm.stats().update(np.concatenate([x, noisy])).level_offset())


def test_scaled_levels_first_mfcc(rng):
    """A statistic that moves by a multiple of the gain (the first MFCC: sqrt(n_mels) x the mean band level) is a
    level too once the model has a level_ref: its slope is found, the prior moves by offset x slope, and a gain
    leaves the standardised input unchanged (TIM-Net's MFCC input)."""
    from edge_ser import features
    fn = lambda w: features.compute(w, "mfcc_deltas", {"n_frames": w.shape[1]})  # noqa: E731
    db = rng.normal(size=(128, 30)).astype(np.float32) * 6 - 40
    slopes = gain_slopes(fn, 128, 30, (0,))
    assert slopes.shape == (1, 39) and slopes[0, 0] == pytest.approx(np.sqrt(128), rel=1e-4)
    assert not slopes[0, 1:].any()  # the other coefficients and the deltas do not move
    assert not gain_mask(fn, 128, 30, (0,)).any()  # the earlier rule: exactly the gain only
    pop = np.stack([fn(db + g) for g in rng.normal(size=50) * 5])
    norm = SpeakerNorm.fit_population(pop, (0,), 10.0)
    norm.level_slope = slopes
    norm.set_level_ref(pop)
    x = fn(db)[None]
    quiet = fn(db - 20)[None]
    np.testing.assert_allclose(norm.window_levels(quiet), norm.window_levels(x) - 20, atol=1e-3)
    for stats_of in (lambda v: None, lambda v: norm.stats().update(v)):
        np.testing.assert_allclose(norm.apply(x, stats_of(x)), norm.apply(quiet, stats_of(quiet)), atol=1e-3)


def test_window_level_statistics_travel_and_refuse_to_mix(rng):
    pop = _speech_image(rng, 20)
    norm = SpeakerNorm.fit_population(pop, (1, 2), 10.0)
    norm.level_slope = np.ones(norm.mean.shape)
    norm.set_level_ref(pop)
    st = norm.stats().update(_speech_image(rng, 3) - 7)
    back = norm.stats_from(st.state())  # what a cluster worker sends back
    assert back.level_offset() == st.level_offset() and back.windows == 3
    np.testing.assert_array_equal(back.mean_var()[0], st.mean_var()[0])
    earlier = SpeakerNorm.fit_population(pop, (1, 2), 10.0)  # no level_ref: its sums hold no window levels
    earlier.level_slope = norm.level_slope
    with pytest.raises(ValueError, match="different norm"):
        st.merge(earlier.stats().update(pop[:2]))
    # a level_ref without level statistics: a fixed prior, no error
    bare = SpeakerNorm.fit_population(pop, (1, 2), 10.0)
    bare.level_ref = -20.0
    assert bare.stats().update(pop[:2]).level_offset() == 0.0 and bare.input_offset(pop[:2]) == 0.0


def test_level_ref_in_the_manifest(rng):
    pop = _speech_image(rng, 20)
    norm = SpeakerNorm.fit_population(pop, (1, 2), 10.0)
    assert "level_ref" not in norm.to_manifest()  # models trained before it keep the earlier offset
    norm.level_slope = np.ones(norm.mean.shape)
    spec = norm.set_level_ref(pop).to_manifest()
    back = SpeakerNorm.from_manifest(json.loads(json.dumps(spec)), pop.shape[1:])
    assert back.level_ref == pytest.approx(norm.level_ref, abs=1e-6)
    assert SpeakerNorm.from_manifest(norm.to_manifest() | {"level_ref": None}, pop.shape[1:]).level_ref is None
    for bad in ("loud", float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="level_ref"):
            SpeakerNorm.from_manifest(dict(spec, level_ref=bad), pop.shape[1:])


def test_gain_mask_of_the_shipped_models():
    cnn, rfc = load_model("fine15-cnn"), load_model("fine15-rfc")
    assert cnn.speaker_norm.level_mask.all()  # the CNN's log-mel image is all levels
    mask = rfc.speaker_norm.level_mask
    assert mask.sum() == 3 + 32 and mask[-35:].all()  # band_stats(absolute=True): 3 levels + 32 band means
    probe = gain_mask(rfc.input_for, 128, rfc.n_frames, ())
    np.testing.assert_array_equal(probe, mask)
    # a model trained before level_ref keeps the unit levels only (TIM-Net's scaled first MFCC is not one)
    timnet = load_model("fine16-timnet")
    assert timnet.speaker_norm.level_ref is None and not timnet.speaker_norm.level_slope.any()


def test_classify_and_listen_do_not_depend_on_the_level(cremad_clips):
    from edge_ser.audio import load_audio
    m = load_model("fine15-cnn")
    same_classify = same_listen = n_listen = 0
    clips = cremad_clips
    for clip in clips:
        y = load_audio(clip)
        same_classify += np.argmax(m.classify_audio(y)) == np.argmax(m.classify_audio(0.1 * y))
        emotions = []
        for g in (1.0, 0.1):  # as `listen --input CLIP` at both levels
            e = Engine(m)
            labelled = [ev.emotion for ev in e.feed(g * y) + e.finish() if ev.emotion]
            emotions.append(labelled[-1] if labelled else None)
        if None not in emotions:
            n_listen += 1
            same_listen += emotions[0] == emotions[1]
    assert same_classify == len(clips)
    assert n_listen >= 0.6 * len(clips) and same_listen >= 0.75 * n_listen


# --- onsets ------------------------------------------------------------------------------------------------------

def test_onset_events_wait_for_enough_speech(tiny_models, rng):
    m = load_model(tiny_models["cnn"])
    engine = Engine(m)
    noise = lambda s: (0.002 * rng.standard_normal(int(s * SR))).astype(np.float32)  # noqa: E731
    first, _ = syllables(3.0, rng, 250.0)
    second, _ = syllables(3.0, rng, 400.0)
    y = np.concatenate([noise(2.0), first + noise(3.0), noise(2.0), second + noise(3.0), noise(1.0)])
    events = engine.feed(y)
    speech = [e for e in events if e.speech]
    assert speech and speech[0].label is None and 0 < speech[0].speech_seconds < 0.75
    for e in events:
        d = e.to_dict()
        assert set(d) >= {"t", "window", "speech", "speech_seconds", "label", "emotion", "confidence"}
        if not e.speech:
            assert d["label"] is None and d["speech_seconds"] == 0.0
        elif e.speech_seconds < GateConfig().min_speech_seconds:
            assert d["label"] is None and d["emotion"] is None and d["scores"] is None
        else:
            assert d["label"] in m.labels
    # after the silence the second utterance starts again from nothing: no emotion carried across it
    gap = next(i for i in range(1, len(events)) if not events[i].speech and events[i - 1].speech)
    restart = next(i for i in range(gap, len(events)) if events[i].speech)
    assert events[restart].label is None and events[restart].speech_seconds < 0.75
    # the model saw the utterance's speech: its window starts after the silence
    later = [e for e in events[restart:] if e.label is not None]
    assert later and later[0].window[0] >= events[gap].t - 0.5


def test_a_window_is_scored_from_its_speech(tiny_models, rng):
    """Speech after 3 s of silence: the first scored window holds the speech frames only, not 2.5 s of mostly
    silence, so it equals the model's scores of those speech frames alone."""
    m = load_model(tiny_models["cnn"])
    engine = Engine(m, gate=GateConfig(context_frames=0))
    quiet = (0.001 * rng.standard_normal(3 * SR)).astype(np.float32)
    burst = harmonic_tone(300.0, 1.5, rng, amp=0.3)
    events = engine.feed(np.concatenate([quiet, burst]))
    scored = [e for e in events if e.scores]
    assert scored
    e = scored[0]
    assert e.window[0] >= 2.8  # the frames before the speech are not in the window
    assert e.window[1] - e.window[0] <= e.speech_seconds + 0.05


def test_fifty_ms_gives_no_emotion(tmp_path, capsys):
    import soundfile as sf
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny_50ms.wav"
    sf.write(path, harmonic_tone(200.0, 0.05, rng, amp=0.5), SR)
    assert cli_main(["classify", "--json", str(path)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] is None and row["emotion"] is None and row["silent"] is False
    assert row["speech_seconds"] < 0.75
    assert cli_main(["listen", "--input", str(path), "--fast", "--json", "-q"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events and all(e["label"] is None for e in events)


# --- options -----------------------------------------------------------------------------------------------------

def test_gate_config_validates():
    assert GateConfig().validate().vad == "spectral"
    for bad, needle in ((dict(vad="webrtc"), "--vad"), (dict(margin_db=-1.0), "--gate-margin"),
                        (dict(margin_db=float("nan")), "--gate-margin"), (dict(min_level_db=3.0), "--min-level"),
                        (dict(min_level_db=float("inf")), "--min-level"), (dict(min_speech_seconds=-1.0),
                                                                           "--min-speech"),
                        (dict(fill="zeros"), "fill")):
        with pytest.raises(UserError, match=needle):
            GateConfig(**bad).validate()
        with pytest.raises(UserError):
            Engine(load_model("fine15-rfc"), gate=GateConfig(**bad), warmup=False)


@pytest.mark.parametrize("args,needle", [(["--vad", "silero"], "--vad"), (["--gate-margin", "-3"], "--gate-margin"),
                                         (["--gate-margin", "x"], "--gate-margin"), (["--min-level", "10"],
                                                                                       "--min-level"),
                                         (["--min-speech", "-1"], "--min-speech")])
def test_listen_bad_gate_options(capsys, args, needle):
    rc = cli_main(["listen", "--input", str(SAMPLE), "--fast", *args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


@pytest.mark.parametrize("vad", ["spectral", "energy"])
def test_listen_gate_options(capsys, vad):
    rc = cli_main(["listen", "--input", str(SAMPLE), "--fast", "--json", "--vad", vad, "--gate-margin", "4",
                   "--min-level", "-65", "--min-speech", "0.5"])
    out, err = capsys.readouterr()
    assert rc == 0 and f"{vad} speech detector" in err
    events = [json.loads(line) for line in out.splitlines()]
    assert any(e["speech"] for e in events)
    assert all(e["label"] is None or e["speech_seconds"] >= 0.5 for e in events)


def test_listen_text_lines_for_speech_without_a_label(capsys):
    """The human-readable lines: speech heard but not yet enough of it says so (no emotion, no crash)."""
    rc = cli_main(["listen", "--input", str(SAMPLE), "--fast"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert any(" speech 0." in line for line in lines)  # the onset: speech_seconds, no emotion yet
    assert "None" not in out and "None" not in err.splitlines()[-1]


def test_gate_dev_scores_a_gate_and_refuses_bad_options(rng, capsys):
    """benchmarks.gate_dev (detector development on cached sessions) scores recall and false alarms per condition
    as the benchmark does; a bad --gate or --set is one error line and exit 2."""
    from benchmarks import gate_dev
    from edge_ser import vad
    y, hops = session(rng, 10)
    out = gate_dev.evaluate(GateConfig(), [("synthetic", "pink10", y, hops)])
    assert out["pink10"]["recall"] >= 0.9 and out["pink10"]["false_alarms"] <= 0.05
    assert gate_dev.main(["--gate", "margin_db=-1"]) == 2
    steady = vad.STEADY_FRAMES
    bad = (["--gate", "margin_db=three"], ["--gate", "frame_samples=1.5"], ["--set", "STEADY_DB"],
           ["--set", "NO_SUCH_CONSTANT=1"], ["--set", "np=1"], ["--set", "STEADY_DB=1", "STEADY_FRAMES=12.5"])
    for argv in bad:
        assert gate_dev.main(argv) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(bad) + 1 and all(line.startswith("error: --gate/--set: ") for line in err)
    assert vad.STEADY_FRAMES == steady and vad.STEADY_DB == 3.0  # nothing set when one is bad
