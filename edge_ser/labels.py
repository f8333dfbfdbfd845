"""Emotions, intensities and the label sets of each task (names fixed by the shared contract).

A clip may carry an emotion, an intensity, both or (BAVED's low/high levels) an intensity only.  `label_for` gives a
clip's single label in a task (None when the task leaves it out or the clip does not say enough); `candidates` gives
every label of the task the clip is compatible with (a partial label: ``sad`` with no intensity -> ``sad_low,
sad_medium, sad_high`` in fine15/fine16).  `collapse_matrix` maps a model's labels onto another task's (a fine16
model scored on basic6 sums over intensities); `intensity_score` is the expected intensity (low 0, medium 0.5,
high 1, neutral 0) of a probability vector.
"""
from __future__ import annotations

import numpy as np

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")
INTENSITIES = ("low", "medium", "high")
FINE_EMOTIONS = ("angry", "sad", "happy", "disgust", "fear")
INTENSITY_VALUES = {"low": 0.0, "medium": 0.5, "high": 1.0}  # intensity_score's scale

_FINE15 = tuple(f"{e}_{i}" for e in FINE_EMOTIONS for i in INTENSITIES)
TASKS: dict[str, tuple[str, ...]] = {
    "fine15": _FINE15,
    "basic6": ("neutral", "happy", "sad", "angry", "fear", "disgust"),
    "emotion5": FINE_EMOTIONS,
    "ravdess8": ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"),
    "fine16": ("neutral",) + _FINE15,
}
# the two heads of a factorised fine16 model: p(label e_i) = p_emotion(e) * p_intensity(i), p(neutral) = p_emotion(0)
FINE16_EMOTIONS = ("neutral",) + FINE_EMOTIONS


def task_labels(task: str) -> tuple[str, ...]:
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})") from None


def split_label(label: str) -> tuple[str, str | None]:
    """``'angry_high'`` -> ``('angry', 'high')``; ``'sad'`` -> ``('sad', None)``."""
    emotion, _, intensity = label.partition("_")
    return emotion, (intensity or None)


def _fine(task: str) -> bool:
    return task in ("fine15", "fine16")


def label_for(task: str, emotion: str | None, intensity: str | None) -> str | None:
    """The task's label for a clip with this emotion and intensity, or None if the task leaves it out (or the clip
    carries only part of the label: see `candidates`)."""
    if emotion is None:
        return None
    if _fine(task) and emotion != "neutral":
        label = f"{emotion}_{intensity}" if intensity in INTENSITIES else None
    else:
        label = emotion
    return label if label in TASKS[task] else None


def candidates(task: str, emotion: str | None, intensity: str | None) -> tuple[str, ...]:
    """Every label of ``task`` compatible with what the clip carries (empty: the task leaves the clip out).

    Full labels give one candidate.  In fine15/fine16 an emotion without intensity gives its three intensities and an
    intensity without emotion (BAVED levels low/high) the five emotions at that intensity."""
    full = label_for(task, emotion, intensity)
    if full is not None:
        return (full,)
    if not _fine(task):
        return ()
    if emotion is None and intensity in INTENSITIES:
        return tuple(f"{e}_{intensity}" for e in FINE_EMOTIONS)
    if emotion in FINE_EMOTIONS and intensity is None:
        return tuple(f"{emotion}_{i}" for i in INTENSITIES)
    return ()


def collapse_matrix(model_labels, task: str) -> np.ndarray:
    """0/1 matrix ``(len(model_labels), len(task's labels))``: a model's probabilities times it are the task's (a fine
    label counts for its emotion; a label with no counterpart in ``task`` maps to nothing).  For fine15 from a fine16
    model, renormalise afterwards (neutral maps to nothing)."""
    target = task_labels(task)
    m = np.zeros((len(model_labels), len(target)), dtype=np.float32)
    for i, lab in enumerate(model_labels):
        e, _ = split_label(lab)
        if lab in target:
            m[i, target.index(lab)] = 1
        elif e in target:
            m[i, target.index(e)] = 1
    return m


def intensity_score(labels, probs) -> float | None:
    """Expected intensity in [0, 1] of a probability vector: low 0, medium 0.5, high 1, and a label without
    intensity (neutral) 0, so it reads like arousal: 0 for calm neutral speech, 1 for certainly high intensity.
    None for a model without any intensity label."""
    values = [INTENSITY_VALUES.get(split_label(lab)[1], 0.0) for lab in labels]
    if not any(split_label(lab)[1] in INTENSITY_VALUES for lab in labels):
        return None
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    total = float(p.sum())
    if not total > 0:
        return None
    return round(float(np.dot(p, values) / total), 4)
