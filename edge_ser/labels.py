"""Emotions, intensities and the label sets of each task (names fixed by the shared contract)."""
from __future__ import annotations

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")
INTENSITIES = ("low", "medium", "high")
FINE_EMOTIONS = ("angry", "sad", "happy", "disgust", "fear")

TASKS: dict[str, tuple[str, ...]] = {
    "fine15": tuple(f"{e}_{i}" for e in FINE_EMOTIONS for i in INTENSITIES),
    "basic6": ("neutral", "happy", "sad", "angry", "fear", "disgust"),
    "emotion5": FINE_EMOTIONS,
    "ravdess8": ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"),
}


def task_labels(task: str) -> tuple[str, ...]:
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})") from None


def split_label(label: str) -> tuple[str, str | None]:
    """``'angry_high'`` -> ``('angry', 'high')``; ``'sad'`` -> ``('sad', None)``."""
    emotion, _, intensity = label.partition("_")
    return emotion, (intensity or None)


def label_for(task: str, emotion: str, intensity: str | None) -> str | None:
    """The task's label for a clip with this emotion and intensity, or None if the task leaves it out."""
    if task == "fine15":
        label = f"{emotion}_{intensity}" if intensity in INTENSITIES else None
    else:
        label = emotion
    return label if label in TASKS[task] else None
