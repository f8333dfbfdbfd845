"""User-facing errors: the CLI prints ``error: <message>`` and exits 2 for these, never a traceback."""


class UserError(Exception):
    """A mistake in what the user gave: a missing file, unreadable audio, an unknown model or option."""


class ModelError(UserError):
    """A model directory or bundle that cannot be trusted or loaded (hash, frontend, labels, version)."""


class AudioError(UserError):
    """Audio that cannot be decoded or used."""


class InvalidAudio(AudioError, ValueError):
    """Samples handed to the Python API that cannot be audio (a wrong dtype or shape, NaN/inf, a bad sample rate,
    bytes instead of an array).  A ValueError too, so Python code can catch it as one; the message never holds
    the samples."""
