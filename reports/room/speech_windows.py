"""python reports/room/speech_windows.py [MODEL]: six emotions of held-out clips scored whole (as `classify`) against
windows of their speech frames only (as `listen`'s ring: loudest band within 30 dB of the clip's peak, 2 frames of
context either side), those frames repeated, stretched (as `listen` fills its window) or centred in silence.  30
clips per held-out speaker of the fine16 models (their manifest's validation speakers), seed 0; each clip adapted to
itself.  Results in docs/room.md."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import noisy_sessions as ns
from edge_ser.registry import load_model
from edge_ser.audio import load_audio
from edge_ser import features
from edge_ser.labels import collapse_matrix, task_labels
model = load_model(sys.argv[1] if len(sys.argv) > 1 else "fine16-cnn")
spk = ns.speakers(ns.DATA, "heldout", "fine16-cnn")
SIX = task_labels("basic6")
C = collapse_matrix(model.labels, "basic6")  # six emotions: the sum over intensities
emos = set(SIX)


def basic(p):
    return SIX[int(np.argmax(p @ C))]


def speech_only(db, pad):
    """The model's six-emotion answer from windows of ``db``'s frames filled by ``pad``, adapted to the clip."""
    x = np.stack([model.input_for(w) for w in features.clip_windows(db, model.n_frames, model.hop_frames(), pad)])
    st = model.speaker_stats() if model.speaker_norm is not None else None
    if st is not None:
        st.update(x)
    return basic(model.predict(model.normalize(x, st)).mean(axis=0))


rng = np.random.default_rng(0)
res = {}
for name, clips in sorted(spk.items()):
    pick = [clips[i] for i in rng.permutation(len(clips))[:30]]
    for f, emo in pick:
        if emo not in emos: continue
        y = load_audio(f, 16000)
        db = model.frames(y)
        lv = db.max(axis=0)  # crude per-frame level proxy: loudest band
        act = lv > lv.max() - 30
        idx = np.flatnonzero(act)
        keep = np.zeros(db.shape[1], bool)
        for d in range(-2, 3): keep[np.clip(idx + d, 0, len(keep) - 1)] = True
        sp = db[:, keep]
        out = {}
        out["whole"] = basic(model.classify_audio(y))
        for pad in ("repeat", "stretch", "silence"):
            out[f"speech_{pad}"] = speech_only(sp, pad)
        corpus = name.split("-")[0][:3]
        for k, v in out.items():
            r = res.setdefault((corpus, k), [0, 0]); r[0] += v == emo; r[1] += 1
for (c, k), (a, n) in sorted(res.items()):
    print(c, k, round(a / n, 3), n)
