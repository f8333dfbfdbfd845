"""python reports/room/noisy_clips.py MODEL...: each clip alone, six emotions: clean / pink 20 / pink 10 dB / same emotion at -20 dB / noisy read as sad.
60 held-out clips (CREMA-D 1015-1025, RAVDESS 15/16: the fine16 models' validation speakers), pink noise mixed at
an SNR over the speech's active samples (benchmarks.noisy_sessions.active_mask), seed 0."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.noisy_sessions import speakers, pink, active_mask
from edge_ser.audio import load_audio
from edge_ser.registry import load_model
from edge_ser.labels import collapse_matrix, task_labels
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
spk = speakers(DATA, "heldout", "fine16-cnn")
clips = []
for n in sorted(spk):
    if n.startswith("esd"): continue
    clips += spk[n][::max(1, len(spk[n]) // 6)][:6]
B = task_labels("basic6")
out = {}
for spec in sys.argv[1:]:
    m = load_model(spec)
    C = collapse_matrix(m.labels, "basic6")
    rng = np.random.default_rng(0)
    def mix(y, snr):
        mask = active_mask(y); p = np.mean(y[mask] ** 2)
        return y + pink(len(y), rng) * np.sqrt(p / 10 ** (snr / 10))
    lab = lambda y: B[int(np.argmax(m.classify_audio(y) @ C))]
    r = {"clean": 0, "pink20": 0, "pink10": 0, "same_at_-20dB": 0, "sad_at_pink10": 0}
    for f, emo in clips:
        y = load_audio(f)
        c, p20, p10, q = lab(y), lab(mix(y, 20)), lab(mix(y, 10)), lab(0.1 * y)
        r["clean"] += c == emo; r["pink20"] += p20 == emo; r["pink10"] += p10 == emo
        r["same_at_-20dB"] += q == c; r["sad_at_pink10"] += p10 == "sad"
    out[spec] = {k: round(v / len(clips), 3) for k, v in r.items()} | {"n": len(clips)}
    print(spec, out[spec], flush=True)
