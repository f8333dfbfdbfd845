"""Corpus loaders: RAVDESS, CREMA-D, TESS, SAVEE (both layouts), EmoDB, ESD, EMOVO and BAVED, recognised by their
file names; a user's own recordings as one folder per label (``folders``) or a CSV manifest (``csv``).

Every loader turns a corpus root in its released layout into `Clip` records (path, corpus, corpus-prefixed speaker,
sex, emotion, intensity, sentence).  A clip carries what its corpus says: an emotion and an intensity (CREMA-D's
IEO sentence, RAVDESS), an emotion only (CREMA-D XX, ESD, EMOVO, TESS, SAVEE, EmoDB) or an intensity only (BAVED's
levels low/high: ``emotion`` None).  `load_corpus` recognises the corpus from the file names (or takes ``corpus=`` to
force one; a folder where no known corpus matches is read as ``folders`` when its folder names are labels) and
returns the clips with a `Summary` of what was found, what was skipped and why, and which labels it did not know
(listed, never guessed).  Audio is not read here: `edge_ser.audio.load_audio` decodes any rate/channels (WAV, FLAC,
Ogg Opus/Vorbis) when features are computed.
"""
from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edge_ser.errors import UserError
from edge_ser.labels import candidates, label_for

log = logging.getLogger("edge_ser.corpora")

AUDIO_EXTENSIONS = {".wav", ".flac", ".aif", ".aiff", ".ogg", ".opus"}
CORPORA = ("ravdess", "cremad", "tess", "savee", "emodb", "esd", "emovo", "baved", "folders", "csv")


@dataclass(frozen=True)
class Clip:
    path: str
    corpus: str
    speaker: str            # corpus-prefixed, e.g. "cremad:1001"
    sex: str | None         # "male" / "female" / None when unknown
    emotion: str | None     # one of edge_ser.labels.EMOTIONS, or None when the corpus gives a level only (BAVED)
    intensity: str | None   # low / medium / high, or None when the corpus does not say
    sentence: str | None = None
    variant: str = ""       # augmentation tag ("" for the original recording)

    def label(self, task: str) -> str | None:
        """The clip's label for ``task`` (edge_ser.labels.label_for), or None if the task leaves it out or the clip
        carries only part of it."""
        return label_for(task, self.emotion, self.intensity)

    def targets(self, task: str) -> tuple[str, ...]:
        """Every label of ``task`` the clip is compatible with (edge_ser.labels.candidates): one for a full label,
        several for a partial one, none when the task leaves the clip out."""
        return candidates(task, self.emotion, self.intensity)

    def describe(self) -> str:
        """What the clip carries, for counts: ``sad``, ``sad/high``, ``level high``."""
        if self.emotion is None:
            return f"level {self.intensity}"
        return self.emotion + (f"/{self.intensity}" if self.intensity else "")


@dataclass
class Summary:
    corpus: str
    root: str
    found: int = 0
    skipped: Counter = field(default_factory=Counter)       # reason -> count
    examples: dict = field(default_factory=dict)            # reason -> one example file
    emotions: Counter = field(default_factory=Counter)     # emotion (or "level X" when only a level is given)
    speakers: int = 0
    unknown_labels: Counter = field(default_factory=Counter)  # label text -> clips (skipped, not guessed)
    notes: list = field(default_factory=list)                 # what the reader should know (e.g. speakers unknown)

    def skip(self, reason: str, path: Path) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, str(path))

    def to_dict(self) -> dict:
        return {"corpus": self.corpus, "root": self.root, "found": self.found, "speakers": self.speakers,
                "emotions": dict(sorted(self.emotions.items())), "skipped": dict(self.skipped),
                "skipped_examples": self.examples, "unknown_labels": dict(self.unknown_labels),
                "notes": list(self.notes)}

    def text(self) -> str:
        lines = [f"{self.corpus} ({self.root}): {self.found} clips of {self.speakers} speakers; "
                 + ", ".join(f"{k} {v}" for k, v in sorted(self.emotions.items()))]
        for reason, n in self.skipped.most_common():
            lines.append(f"  skipped {n}: {reason} (e.g. {self.examples[reason]})")
        if self.unknown_labels:
            lines.append("  unknown labels (skipped, not guessed): "
                         + ", ".join(f"{k!r} {v}" for k, v in self.unknown_labels.most_common()))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def problems(self) -> str:
        """One line: why clips were skipped (for the error when nothing is usable)."""
        parts = [f"{reason} {n}" for reason, n in self.skipped.most_common()]
        if self.unknown_labels:
            parts.append("unknown labels " + ", ".join(sorted(self.unknown_labels)))
        return "; ".join(parts) or "nothing found"


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


# ESD: <speaker>/<Emotion>/[train|evaluation|test/]<speaker>_<NNNNNN>.wav (here .ogg); English speakers 0011-0020,
# Mandarin 0001-0010.  The 350 sentences repeat in every emotion, numbered on (N - 1) % 350.
_ESD = re.compile(r"^(\d{4})_(\d{6})$")
_ESD_EMO = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
_ESD_SEX = {"0020": "male"}  # ../shared/data/README.md; other speakers' sex is not given there


def parse_esd(path: Path, ctx: dict):
    m = _ESD.match(path.stem)
    if not m:
        return None
    spk, num = m.groups()
    folders = [p.name.lower() for p in path.parents][:3]
    emo = next((_ESD_EMO[f] for f in folders if f in _ESD_EMO), None)
    if emo is None:
        return "ESD file outside an emotion folder (Angry, Happy, Neutral, Sad, Surprise)"
    return Clip(str(path), "esd", f"esd:{spk}", _ESD_SEX.get(spk), emo, None, f"{(int(num) - 1) % 350:03d}")


_EMOVO = re.compile(r"^(dis|gio|neu|pau|rab|sor|tri)-([fm]\d)-(\w+)$")
_EMOVO_EMO = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry", "sor": "surprise",
              "tri": "sad"}


def parse_emovo(path: Path, ctx: dict):
    m = _EMOVO.match(path.stem)
    if not m:
        return None
    emo, spk, sentence = m.groups()
    return Clip(str(path), "emovo", f"emovo:{spk}", "female" if spk[0] == "f" else "male", _EMOVO_EMO[emo], None,
                sentence)


# BAVED: <word 0-6>/<speaker>-<m|f>-<age>-<word>-<level>-<record>.wav.  The level is the only label: 0 low (tired,
# down), 1 neutral (everyday speech, "expressing a neutral emotion" in the corpus' README), 2 high (a strong
# positive or negative emotion).  Level 1 is read as the emotion neutral; levels 0 and 2 as an intensity of an
# unknown emotion (every fine label at that intensity is a candidate, see edge_ser.labels.candidates).
_BAVED = re.compile(r"^(\d+)-([mf])-(\d+)-([0-6])-([0-2])-(\d+)$")


def parse_baved(path: Path, ctx: dict):
    m = _BAVED.match(path.stem)
    if not m:
        return None
    spk, sex, _age, word, level, _rec = m.groups()
    emotion, intensity = {"0": (None, "low"), "1": ("neutral", None), "2": (None, "high")}[level]
    return Clip(str(path), "baved", f"baved:{spk}", "male" if sex == "m" else "female", emotion, intensity, word)


PARSERS = {"ravdess": parse_ravdess, "cremad": parse_cremad, "tess": parse_tess, "savee": parse_savee,
           "emodb": parse_emodb, "esd": parse_esd, "emovo": parse_emovo, "baved": parse_baved}

# --- a user's own data: folder names and CSV labels --------------------------------------------------------------

EMOTION_NAMES = {"angry": "angry", "anger": "angry", "happy": "happy", "happiness": "happy", "joy": "happy",
                 "sad": "sad", "sadness": "sad", "neutral": "neutral", "fear": "fear", "fearful": "fear",
                 "disgust": "disgust", "disgusted": "disgust", "surprise": "surprise", "surprised": "surprise",
                 "calm": "calm"}
INTENSITY_NAMES = {"low": "low", "lo": "low", "weak": "low", "medium": "medium", "md": "medium", "mid": "medium",
                   "normal": "medium", "high": "high", "hi": "high", "strong": "high"}


def parse_label(text: str) -> tuple[str | None, str | None] | None:
    """``(emotion, intensity)`` for a label text in any case: an emotion name (``Anger``), an emotion and intensity
    (``angry_high``, ``sad-low``, ``happy high``) or an intensity alone (``high``); None when not recognised."""
    t = re.sub(r"[\s\-]+", "_", text.strip().lower())
    if t in EMOTION_NAMES:
        return EMOTION_NAMES[t], None
    if t in INTENSITY_NAMES:
        return None, INTENSITY_NAMES[t]
    e, _, i = t.rpartition("_")
    if e in EMOTION_NAMES and i in INTENSITY_NAMES:
        return EMOTION_NAMES[e], INTENSITY_NAMES[i]
    return None


def _folder_label(path: Path, root: Path):
    """(label folder index, emotion, intensity) of the nearest folder under ``root`` whose name is a label."""
    dirs = path.relative_to(root).parts[:-1]
    for k in range(len(dirs) - 1, -1, -1):
        got = parse_label(dirs[k])
        if got is not None:
            return k, got
    return None


def parse_folders(path: Path, ctx: dict):
    """One folder per label (``angry/``, ``Happiness/``, ``sad_high/``), optionally with one speaker level
    (``<label>/<speaker>/`` or ``<speaker>/<label>/``); without a speaker level each clip is its own speaker."""
    root = ctx["root"]
    dirs = path.relative_to(root).parts[:-1]
    if not dirs:
        return "not inside a label folder"
    found = _folder_label(path, root)
    if found is None:  # the folder at the depth where this corpus keeps its labels (the top one if none is known)
        depth = ctx.get("label_depth", 0)
        ctx.setdefault("unknown", Counter())[dirs[min(depth, len(dirs) - 1)]] += 1
        return "unknown label folder (not guessed)"
    k, (emotion, intensity) = found
    others = [d for j, d in enumerate(dirs) if j != k]
    if others:
        speaker = "/".join(others)
    else:
        speaker = str(path.relative_to(root).with_suffix(""))
        ctx["own_speaker"] = True
    return Clip(str(path), "folders", f"folders:{speaker}", None, emotion, intensity, None)


def _detect_folders(files: list[Path], root: Path) -> bool:
    return any(_folder_label(p, root) is not None for p in files[:2000])


def load_manifest(path: Path) -> tuple[list[Clip], Summary]:
    """A CSV manifest: columns ``path,label[,speaker][,intensity][,corpus]`` (paths relative to the CSV's folder).
    ``label`` is an emotion name, a fine label (``angry_high``) or empty when ``intensity`` alone is known.  Rows with
    a missing file or an unknown label are listed in the summary and skipped."""
    summary = Summary("csv", str(path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            header = [h.strip().lower() for h in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{path}: not a readable CSV manifest ({exc})") from None
    if not rows:
        raise CorpusError(f"{path}: an empty manifest (columns path,label[,speaker][,intensity])")
    if "path" not in header or "label" not in header:
        raise CorpusError(f"{path}: a manifest needs the columns path,label[,speaker][,intensity] (found "
                          f"{','.join(header)})")
    clips, with_speaker = [], 0
    for n, raw in enumerate(rows, start=2):  # line numbers as an editor shows them (the header is line 1)
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        where = f"{path}:{n}"
        if not row.get("path"):
            summary.skip("row without a path", where)
            continue
        audio = Path(row["path"])
        audio = audio if audio.is_absolute() else path.parent / audio
        if not audio.is_file():
            summary.skip("file not found", f"{where} {audio}")
            continue
        emotion = intensity = None
        if row.get("label"):
            got = parse_label(row["label"])
            if got is None or (got[0] is None and row.get("intensity")):
                summary.unknown_labels[row["label"]] += 1
                summary.skip("unknown label", f"{where} {row['label']!r}")
                continue
            emotion, intensity = got
        if row.get("intensity"):
            i = INTENSITY_NAMES.get(row["intensity"].lower())
            if i is None or (intensity is not None and intensity != i):
                summary.unknown_labels[f"intensity {row['intensity']}"] += 1
                summary.skip("unknown or contradicting intensity", f"{where} {row['intensity']!r}")
                continue
            intensity = i
        if emotion is None and intensity is None:
            summary.skip("row without a label or intensity", where)
            continue
        corpus = row.get("corpus") or "csv"
        speaker = row.get("speaker") or str(audio.with_suffix(""))
        with_speaker += bool(row.get("speaker"))
        clips.append(Clip(str(audio), corpus, f"{corpus}:{speaker}", None, emotion, intensity, None))
        summary.emotions[clips[-1].describe().split("/")[0]] += 1
    if clips and with_speaker < len(clips):
        summary.notes.append(f"{len(clips) - with_speaker} clips without a speaker: each is its own speaker "
                             "(splits are by clip)")
    return _finish(clips, summary, path)


def _finish(clips: list[Clip], summary: Summary, root: Path) -> tuple[list[Clip], Summary]:
    summary.found = len(clips)
    summary.speakers = len({c.speaker for c in clips})
    if summary.skipped or summary.unknown_labels:  # one line; the summary (Summary.text) lists examples
        log.warning("%s: %d clips kept, skipped %d (%s)", root, len(clips), sum(summary.skipped.values()),
                    summary.problems())
    if not clips:
        raise CorpusError(f"{root}: no usable {summary.corpus} clips ({summary.problems()})")
    return clips, summary


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                  and not p.name.startswith("._"))


def detect_corpus(files: list[Path], root: Path) -> str | None:
    """The corpus whose file-name pattern matches most files; ``folders`` if none matches but folder names are labels
    (None if neither)."""
    votes = Counter()
    for p in files[:2000]:
        for name, parse in PARSERS.items():
            if parse(p, {"root": root, "sexes": {}}) is not None:
                votes[name] += 1
    if votes:
        return votes.most_common(1)[0][0]
    return "folders" if _detect_folders(files, root) else None


def load_corpus(root: str | Path, corpus: str | None = None) -> tuple[list[Clip], Summary]:
    """All clips under ``root`` (one corpus in its released layout) and a summary of found/skipped."""
    root = Path(root)
    if corpus is not None and corpus not in CORPORA:
        raise CorpusError(f"unknown corpus {corpus!r} (known: {', '.join(CORPORA)})")
    if not root.exists():
        raise CorpusError(f"{root}: no such {'file' if root.suffix.lower() == '.csv' else 'directory'}")
    if root.is_file() and (corpus == "csv" or (corpus is None and root.suffix.lower() == ".csv")):
        return load_manifest(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: not a directory (--data takes a corpus folder or a .csv manifest)")
    if corpus == "csv":
        raise CorpusError(f"{root}: --corpus csv takes a .csv manifest, not a folder")
    files = _audio_files(root)
    if not files:
        raise CorpusError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) found")
    name = corpus or detect_corpus(files, root)
    if name is None:
        raise CorpusError(f"{root}: no file names of a known corpus ({', '.join(CORPORA[:-2])}) and no label "
                          "folders; use --corpus to force one, --corpus folders for one folder per label")
    parse = parse_folders if name == "folders" else PARSERS[name]
    ctx = {"root": root}
    if name == "folders":
        depths = Counter(f[0] for f in (_folder_label(p, root) for p in files) if f is not None)
        ctx["label_depth"] = depths.most_common(1)[0][0] if depths else 0
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
            summary.emotions[got.emotion or f"level {got.intensity}"] += 1
    if name == "cremad" and not ctx.get("sexes"):
        summary.skip("VideoDemographics.csv not found: sex unknown", root)
    summary.unknown_labels.update(ctx.get("unknown", {}))
    if ctx.get("own_speaker"):
        summary.notes.append("files directly in label folders: each clip is its own speaker (splits are by clip); "
                             "use <label>/<speaker>/ or <speaker>/<label>/ folders to keep speakers apart")
    return _finish(clips, summary, root)


def load_corpora(roots, corpus: str | None = None) -> tuple[list[Clip], list[Summary]]:
    clips, summaries = [], []
    for root in roots:
        c, s = load_corpus(root, corpus)
        clips += c
        summaries.append(s)
    return clips, summaries


def for_task(clips: list[Clip], task: str) -> tuple[list[Clip], list[str], Counter]:
    """Clips that carry a full label of ``task``, their labels, and a count of the left-out ones (by what they
    carry).  Partial labels (an emotion without intensity in fine15/fine16): `for_task_partial`."""
    kept, labels, left = [], [], Counter()
    for c in clips:
        lab = c.label(task)
        if lab is None:
            left[c.describe() if task in ("fine15", "fine16") else (c.emotion or c.describe())] += 1
        else:
            kept.append(c)
            labels.append(lab)
    return kept, labels, left


def for_task_partial(clips: list[Clip], task: str) -> tuple[list[Clip], list[tuple[str, ...]], Counter]:
    """Clips that carry any label of ``task`` (full or partial), their candidate labels, and a count of the
    left-out ones (e.g. surprise or calm in fine16)."""
    kept, cands, left = [], [], Counter()
    for c in clips:
        t = c.targets(task)
        if t:
            kept.append(c)
            cands.append(t)
        else:
            left[c.describe()] += 1
    return kept, cands, left
