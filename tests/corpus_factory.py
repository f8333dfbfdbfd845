"""Tiny generated corpora in the real released layouts (file names, folders, CSVs), for fast offline tests.

Clips are short harmonic tones whose pitch depends on the emotion (so a model can learn them), written as WAV at
the corpus' original sample rate or as FLAC.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

EMO_F0 = {"neutral": 140.0, "calm": 170.0, "happy": 260.0, "sad": 120.0, "angry": 330.0, "fear": 400.0,
          "disgust": 200.0, "surprise": 460.0}
INT_GAIN = {"low": 0.05, "medium": 0.15, "high": 0.45, None: 0.15}


def tone(emotion: str, intensity: str | None = None, seconds: float = 1.0, sr: int = 16000, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = EMO_F0[emotion] * (1 + 0.03 * rng.standard_normal())
    vib = 1 + 0.02 * np.sin(2 * np.pi * (3 + {"low": 0, "medium": 3, "high": 6, None: 0}[intensity]) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vib) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = np.minimum(1, np.minimum(t, t[-1] - t) * 20)
    y = INT_GAIN[intensity] * env * y / 3 + 0.002 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def _write(path: Path, y: np.ndarray, sr: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr)


RAV_EMO = {"neutral": "01", "calm": "02", "happy": "03", "sad": "04", "angry": "05", "fear": "06", "disgust": "07",
           "surprise": "08"}


def make_ravdess(root: Path, actors=(1, 2, 3, 4), emotions=("neutral", "happy", "sad", "angry", "fear", "disgust"),
                 statements=(1,), sr: int = 16000, ext: str = ".wav", seconds: float = 1.0) -> Path:
    n = 0
    for a in actors:
        for e in emotions:
            for inten in (("01",) if e == "neutral" else ("01", "02")):
                for s in statements:
                    name = f"03-01-{RAV_EMO[e]}-{inten}-{s:02d}-01-{a:02d}{ext}"
                    _write(root / f"Actor_{a:02d}" / name,
                           tone(e, {"01": "medium", "02": "high"}[inten], seconds, sr, seed=n), sr)
                    n += 1
    return root


CREMA_EMO = {"angry": "ANG", "disgust": "DIS", "fear": "FEA", "happy": "HAP", "neutral": "NEU", "sad": "SAD"}


def make_cremad(root: Path, actors=(1001, 1002, 1003, 1004), emotions=("angry", "sad", "happy", "disgust", "fear"),
                sr: int = 16000, ext: str = ".wav", xx: bool = True, seconds: float = 1.0) -> Path:
    n = 0
    for a in actors:
        for e in emotions:
            for lvl, inten in (("LO", "low"), ("MD", "medium"), ("HI", "high")):
                _write(root / "AudioWAV" / f"{a}_IEO_{CREMA_EMO[e]}_{lvl}{ext}", tone(e, inten, seconds, sr, n), sr)
                n += 1
            if xx:
                _write(root / "AudioWAV" / f"{a}_DFA_{CREMA_EMO[e]}_XX{ext}", tone(e, None, seconds, sr, n), sr)
                n += 1
    rows = ['"ActorID","Age","Sex","Race","Ethnicity"']
    rows += [f'{a},30,"{"Male" if k % 2 == 0 else "Female"}","Caucasian","Not Hispanic"' for k, a in enumerate(actors)]
    (root / "VideoDemographics.csv").write_text("\n".join(rows) + "\n")
    return root


def make_tess(root: Path, sr: int = 24414) -> Path:
    folders = {("OAF", "angry"): "OAF_angry", ("OAF", "ps"): "OAF_Pleasant_surprise", ("YAF", "fear"): "YAF_fear",
               ("YAF", "ps"): "YAF_pleasant_surprised", ("YAF", "sad"): "YAF_Sad"}
    for (who, emo), folder in folders.items():
        for word in ("back", "bar"):
            e = "surprise" if emo == "ps" else emo
            _write(root / folder / f"{who}_{word}_{emo}.wav", tone(e, None, 0.6, sr), sr)
    return root


def make_savee(root: Path, flat: bool = False, sr: int = 44100) -> Path:
    for who in ("DC", "JE"):
        for code, e in (("a", "angry"), ("sa", "sad"), ("su", "surprise"), ("n", "neutral")):
            name = f"{who}_{code}01.wav" if flat else f"{who}/{code}01.wav"
            _write(root / name, tone(e, None, 0.6, sr), sr)
    return root


def make_emodb(root: Path, sr: int = 16000) -> Path:
    for spk in ("03", "08"):
        for letter, e in (("W", "angry"), ("T", "sad"), ("N", "neutral"), ("L", None)):
            _write(root / "wav" / f"{spk}a01{letter}a.wav", tone(e or "calm", None, 0.6, sr), sr)
    return root


def _write_ogg(path: Path, y: np.ndarray, sr: int = 16000):
    """Ogg/Opus, as ../shared/data holds ESD, EMOVO and BAVED (libsndfile >= 1.0.29 writes and reads Opus)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, format="OGG", subtype="OPUS")


ESD_FOLDERS = {"angry": "Angry", "happy": "Happy", "neutral": "Neutral", "sad": "Sad", "surprise": "Surprise"}


def make_esd(root: Path, speaker: str = "0020", per_emotion: int = 2, seconds: float = 0.6) -> Path:
    """``<spk>/<Emotion>/<spk>_<NNNNNN>.ogg``: sentences 1-350 neutral, 351-700 angry, ... (the released order)."""
    lines = []
    for k, (e, folder) in enumerate(ESD_FOLDERS.items()):
        for j in range(per_emotion):
            num = {"neutral": 0, "angry": 350, "happy": 700, "sad": 1050, "surprise": 1400}[e] + j + 1
            _write_ogg(root / speaker / folder / f"{speaker}_{num:06d}.ogg", tone(e, None, seconds, seed=num))
            lines.append(f"{speaker}_{num:06d}\tSentence {j}.\t{folder}")
    (root / speaker / f"{speaker}.txt").write_text("\n".join(lines) + "\n")
    return root


EMOVO_CODES = {"disgust": "dis", "happy": "gio", "neutral": "neu", "fear": "pau", "angry": "rab", "surprise": "sor",
               "sad": "tri"}


def make_emovo(root: Path, speakers=("f1", "m1"), sentences=("b1", "l1"), seconds: float = 0.6) -> Path:
    """``<spk>/<emo>-<spk>-<sentence>.ogg``, 48 kHz stereo like the original recordings."""
    n = 0
    for spk in speakers:
        for e, code in EMOVO_CODES.items():
            for s in sentences:
                y = tone(e, None, seconds, 48000, seed=n)
                _write_ogg(root / spk / f"{code}-{spk}-{s}.ogg", np.stack([y, 0.8 * y], axis=1), 48000)
                n += 1
    return root


def make_baved(root: Path, speakers=((0, "m", 21), (3, "f", 21), (5, "m", 20)), words=(0, 4),
               seconds: float = 0.6) -> Path:
    """``<word>/<spk>-<m|f>-<age>-<word>-<level>-<record>.ogg``; level 0 low, 1 neutral, 2 high."""
    n = 0
    for spk, sex, age in speakers:
        for w in words:
            for level, (e, inten) in enumerate((("sad", "low"), ("neutral", None), ("angry", "high"))):
                name = f"{spk}-{sex}-{age}-{w}-{level}-{100 + n}.ogg"
                _write_ogg(root / str(w) / name, tone(e, inten, seconds, seed=n))
                n += 1
    (root / "speakers_info.json").write_text("{" + ", ".join(f'"{s}": {{"age": {a}, "gender": "{x}"}}'
                                                            for s, x, a in speakers) + "}\n")
    return root


def make_folders(root: Path, names=("Angry", "happiness", "SAD", "neutral", "Fearful"), speakers=("alice", "bob"),
                 per_label: int = 2, seconds: float = 0.6, speaker_level: bool = True) -> Path:
    """One folder per label (names in any case), ``<label>/<speaker>/<n>.wav`` or flat ``<label>/<n>.wav``."""
    from_name = {"angry": "angry", "anger": "angry", "happiness": "happy", "happy": "happy", "joy": "happy",
                 "sad": "sad", "neutral": "neutral", "fearful": "fear", "fear": "fear", "disgust": "disgust",
                 "surprised": "surprise", "calm": "calm"}
    n = 0
    for name in names:
        e = from_name.get(name.lower(), "calm")
        for spk in speakers:
            for j in range(per_label):
                sub = root / name / spk if speaker_level else root / name
                _write(sub / f"{spk}_{j}.wav", tone(e, None, seconds, seed=n), 16000)
                n += 1
    return root
