"""Corpus loaders: RAVDESS, CREMA-D, TESS, SAVEE (both layouts) and EmoDB, recognised by their file names.

Every loader turns a corpus root in its released layout into `Clip` records (path, corpus, corpus-prefixed speaker,
sex, emotion, intensity, sentence).  `load_corpus` recognises the corpus from the file names (or takes
``corpus=`` to force one) and returns the clips with a `Summary` of what was found and what was skipped and why.
Audio is not read here: `edge_ser.audio.load_audio` decodes any rate/channels when features are computed.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edge_ser.errors import UserError
from edge_ser.labels import label_for

AUDIO_EXTENSIONS = {".wav", ".flac", ".aif", ".aiff", ".ogg"}
CORPORA = ("ravdess", "cremad", "tess", "savee", "emodb")


@dataclass(frozen=True)
class Clip:
    path: str
    corpus: str
    speaker: str            # corpus-prefixed, e.g. "cremad:1001"
    sex: str | None         # "male" / "female" / None when unknown
    emotion: str            # one of edge_ser.labels.EMOTIONS
    intensity: str | None   # low / medium / high, or None when the corpus does not say
    sentence: str | None = None
    variant: str = ""       # augmentation tag ("" for the original recording)

    def label(self, task: str) -> str | None:
        """The clip's label for ``task`` (edge_ser.labels.label_for), or None if the task leaves it out."""
        return label_for(task, self.emotion, self.intensity)


@dataclass
class Summary:
    corpus: str
    root: str
    found: int = 0
    skipped: Counter = field(default_factory=Counter)       # reason -> count
    examples: dict = field(default_factory=dict)            # reason -> one example file
    emotions: Counter = field(default_factory=Counter)
    speakers: int = 0

    def skip(self, reason: str, path: Path) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, str(path))

    def to_dict(self) -> dict:
        return {"corpus": self.corpus, "root": self.root, "found": self.found, "speakers": self.speakers,
                "emotions": dict(sorted(self.emotions.items())), "skipped": dict(self.skipped),
                "skipped_examples": self.examples}

    def text(self) -> str:
        lines = [f"{self.corpus} ({self.root}): {self.found} clips of {self.speakers} speakers; "
                 + ", ".join(f"{k} {v}" for k, v in sorted(self.emotions.items()))]
        for reason, n in self.skipped.most_common():
            lines.append(f"  skipped {n}: {reason} (e.g. {self.examples[reason]})")
        return "\n".join(lines)


class CorpusError(UserError):
    """A --data folder that holds no recognisable corpus."""


# --- one parser per corpus: (path, root, context) -> Clip | str (the reason it is skipped) | None (not ours) ----

_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_EMO = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
                "07": "disgust", "08": "surprise"}
_RAVDESS_INT = {"01": "medium", "02": "high"}  # normal -> medium, strong -> high (shared contract)


def parse_ravdess(path: Path, ctx: dict):
    m = _RAVDESS.match(path.stem)
    if not m:
        return None
    modality, channel, emo, inten, statement, rep, actor = m.groups()
    if modality not in ("01", "02", "03"):
        return f"unknown modality {modality}"
    if channel != "01":
        return "song (vocal channel 02), not speech"
    if emo not in _RAVDESS_EMO or inten not in _RAVDESS_INT:
        return "unknown emotion or intensity code"
    emotion = _RAVDESS_EMO[emo]
    return Clip(str(path), "ravdess", f"ravdess:{actor}", "male" if int(actor) % 2 else "female", emotion,
                None if emotion == "neutral" else _RAVDESS_INT[inten], f"{statement}-{rep}")


_CREMAD = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_CREMAD_EMO = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_CREMAD_INT = {"LO": "low", "MD": "medium", "HI": "high", "XX": None, "X": None}


def _cremad_sexes(root: Path) -> dict:
    for cand in [root / "VideoDemographics.csv", root.parent / "VideoDemographics.csv",
                 *root.glob("**/VideoDemographics.csv")]:
        if cand.is_file():
            with open(cand, newline="") as f:
                return {row["ActorID"].strip(): row["Sex"].strip().lower() for row in csv.DictReader(f)}
    return {}


def parse_cremad(path: Path, ctx: dict):
    m = _CREMAD.match(path.stem)
    if not m:
        return None
    actor, sentence, emo, inten = m.groups()
    if emo not in _CREMAD_EMO:
        return f"unknown emotion code {emo}"
    if inten not in _CREMAD_INT:
        return f"unknown intensity code {inten}"
    sexes = ctx.setdefault("sexes", _cremad_sexes(ctx["root"]))
    emotion = _CREMAD_EMO[emo]
    intensity = None if emotion == "neutral" else _CREMAD_INT[inten]
    return Clip(str(path), "cremad", f"cremad:{actor}", sexes.get(actor), emotion, intensity, sentence)


_TESS = re.compile(r"^(OAF|YAF)_(.+?)_(angry|disgust|fear|fearful|happy|neutral|ps|sad|pleasant_surprised?|"
                   r"surprised?)$", re.IGNORECASE)
_TESS_EMO = {"angry": "angry", "disgust": "disgust", "fear": "fear", "fearful": "fear", "happy": "happy",
             "neutral": "neutral", "ps": "surprise", "sad": "sad", "pleasant_surprise": "surprise",
             "pleasant_surprised": "surprise", "surprise": "surprise", "surprised": "surprise"}


def parse_tess(path: Path, ctx: dict):
    m = _TESS.match(path.stem)
    if not m:
        return None
    who, word, emo = m.groups()
    return Clip(str(path), "tess", f"tess:{who.upper()}", "female", _TESS_EMO[emo.lower()], None, word.lower())


_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE_FLAT = re.compile(r"^(DC|JE|JK|KL)_(sa|su|a|d|f|h|n)(\d\d)$")
_SAVEE_NESTED = re.compile(r"^(sa|su|a|d|f|h|n)(\d\d)$")
_SAVEE_EMO = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad",
              "su": "surprise"}


def parse_savee(path: Path, ctx: dict):
    m = _SAVEE_FLAT.match(path.stem)
    if m:
        who, emo, num = m.groups()
    else:
        m = _SAVEE_NESTED.match(path.stem)
        if not m or path.parent.name not in _SAVEE_SPEAKERS:
            return None
        who, (emo, num) = path.parent.name, m.groups()
    return Clip(str(path), "savee", f"savee:{who}", "male", _SAVEE_EMO[emo], None, f"{emo}{num}")


_EMODB = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")
_EMODB_EMO = {"W": "angry", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
_EMODB_MALE = {"03", "10", "11", "12", "15"}


def parse_emodb(path: Path, ctx: dict):
    m = _EMODB.match(path.stem)
    if not m:
        return None
    spk, text, emo, _version = m.groups()
    if emo == "L":
        return "boredom is not one of edge-ser's emotions"
    return Clip(str(path), "emodb", f"emodb:{spk}", "male" if spk in _EMODB_MALE else "female", _EMODB_EMO[emo],
                None, text)


PARSERS = {"ravdess": parse_ravdess, "cremad": parse_cremad, "tess": parse_tess, "savee": parse_savee,
           "emodb": parse_emodb}


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                  and not p.name.startswith("._"))


def detect_corpus(files: list[Path], root: Path) -> str | None:
    """The corpus whose file-name pattern matches most files (None if none matches any)."""
    votes = Counter()
    for p in files[:2000]:
        for name, parse in PARSERS.items():
            if parse(p, {"root": root, "sexes": {}}) is not None:
                votes[name] += 1
    return votes.most_common(1)[0][0] if votes else None


def load_corpus(root: str | Path, corpus: str | None = None) -> tuple[list[Clip], Summary]:
    """All clips under ``root`` (one corpus in its released layout) and a summary of found/skipped."""
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"{root}: no such directory")
    if not root.is_dir():
        raise CorpusError(f"{root}: not a directory (--data takes a corpus folder)")
    if corpus is not None and corpus not in PARSERS:
        raise CorpusError(f"unknown corpus {corpus!r} (known: {', '.join(CORPORA)})")
    files = _audio_files(root)
    if not files:
        raise CorpusError(f"{root}: no audio files (.wav/.flac) found")
    name = corpus or detect_corpus(files, root)
    if name is None:
        raise CorpusError(f"{root}: no file names of a known corpus ({', '.join(CORPORA)}); use --corpus to force")
    parse = PARSERS[name]
    ctx = {"root": root}
    summary = Summary(name, str(root))
    for p in sorted(root.rglob("*")):  # named like audio but not a regular file: say so rather than ignore it
        if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_file():
            summary.skip("not a regular file (a directory, pipe or device named like audio)", p)
    clips = []
    for p in files:
        got = parse(p, ctx)
        if got is None:
            summary.skip(f"file name not in the {name} layout", p)
        elif isinstance(got, str):
            summary.skip(got, p)
        else:
            clips.append(got)
            summary.emotions[got.emotion] += 1
    if name == "cremad" and not ctx.get("sexes"):
        summary.skip("VideoDemographics.csv not found: sex unknown", root)
    summary.found = len(clips)
    summary.speakers = len({c.speaker for c in clips})
    if not clips:
        raise CorpusError(f"{root}: no usable {name} clips ({', '.join(summary.skipped)})")
    return clips, summary


def load_corpora(roots, corpus: str | None = None) -> tuple[list[Clip], list[Summary]]:
    clips, summaries = [], []
    for root in roots:
        c, s = load_corpus(root, corpus)
        clips += c
        summaries.append(s)
    return clips, summaries


def for_task(clips: list[Clip], task: str) -> tuple[list[Clip], list[str], Counter]:
    """Clips that ``task`` keeps, their labels, and a count of the left-out emotions/intensities."""
    kept, labels, left = [], [], Counter()
    for c in clips:
        lab = c.label(task)
        if lab is None:
            left[f"{c.emotion}" + (f"/{c.intensity}" if task == "fine15" else "")] += 1
        else:
            kept.append(c)
            labels.append(lab)
    return kept, labels, left
