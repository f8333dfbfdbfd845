"""python reports/room/variants/speech_frames_train.py train --recipe fine16-cnn --data ... --out DIR: `edge-ser train`
with every training and scoring window cut from a clip's speech frames only, stretched into the window (as `listen`'s
ring fills it), instead of the whole clip centred in silence.  Speech frames: the runtime's spectral detector
(`edge_ser.vad.SpectralDetector`, default `GateConfig`) run twice over the clip's frames, so that its floors know
the whole clip, with ``context_frames`` either side; frame levels from the mel power (`features.power_level_db`, no
dBFS calibration: the -70 dBFS minimum level is looser here than in `listen`); a clip with fewer than 8 speech frames
keeps all of them.  A measurement, not a training option: results in docs/room.md ("What is not solved")."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from edge_ser import features  # noqa: E402
from edge_ser.stream import GateConfig  # noqa: E402
from edge_ser.vad import SpectralDetector  # noqa: E402

CFG = GateConfig()
MIN_FRAMES = 8
FRAME_SECONDS = 512 / 16000


def speech_mask(db: np.ndarray, cfg: GateConfig = CFG) -> np.ndarray:
    det = SpectralDetector(cfg, FRAME_SECONDS, n_mels=db.shape[0])
    levels = features.power_level_db(db, axis=0)
    clipped = np.zeros(db.shape[1], bool)
    det.push(db, levels, clipped)  # first pass: the floors learn the clip
    det._recent = np.zeros(0)
    active = det.push(db, levels, clipped)
    keep = active.copy()
    for d in range(1, cfg.context_frames + 1):
        keep[d:] |= active[:-d]
        keep[:-d] |= active[d:]
    return keep


def speech_windows_of(db: np.ndarray, spec) -> np.ndarray:
    keep = speech_mask(db)
    if keep.sum() >= MIN_FRAMES:
        db = db[:, keep]
    return features.clip_windows(db, spec.n_frames, spec.hop_frames, "stretch")


if __name__ == "__main__":
    from edge_ser_train import dataset, train
    dataset.windows_of = speech_windows_of
    train.windows_of = speech_windows_of
    from edge_ser.__main__ import run
    sys.argv = ["edge-ser"] + sys.argv[1:]
    run()
