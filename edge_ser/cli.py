"""The ``edge-ser`` command line.  The runtime's commands are in `cli_runtime` (classify, listen, devices, models) and
`cli_device` (profiles, bench, package, install-bundle).  Other distributions add commands through the entry-point
group ``edge_ser.commands`` (`TRAINING_COMMANDS` come from ``edge-ser-train``); on a runtime-only install those
names answer with one line saying what to install.

Every user mistake ends as one line ``error: ...`` on stderr with exit code 2 (see `main`).
"""
from __future__ import annotations

import logging
import sys

import typer
from typer.exceptions import Abort, Exit, TyperException

from . import __version__
from .errors import UserError

app = typer.Typer(
    name="edge-ser",
    help="Speech emotion recognition for companion robots: emotion and intensity from a microphone or files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool):
    if value:
        print(f"edge-ser {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """Speech emotion recognition for companion robots."""


# Commands register themselves on `app` when their modules are imported.
from . import cli_runtime, cli_device  # noqa: E402,F401

COMMANDS_GROUP = "edge_ser.commands"  # entry points: a callable taking the typer app, adding its commands
TRAINING_COMMANDS = ("train", "evaluate", "export", "pseudo-label")
TRAINING_HINT = "pip install edge-ser-train (from a checkout: pip install ./export)"


def _load_plugins() -> None:
    """Add the commands of every installed ``edge_ser.commands`` entry point; a training command that none of them
    provides becomes a hidden command that says what to install."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            ep.load()(app)
        except ImportError as exc:  # a broken plugin install must not take the runtime's commands with it
            logging.getLogger("edge_ser").warning("commands of %s not loaded: %s", ep.value, exc)
    have = {c.name for c in app.registered_commands}
    for name in TRAINING_COMMANDS:
        if name not in have:
            app.command(name, hidden=True, context_settings={"ignore_unknown_options": True,
                                                             "allow_extra_args": True},
                        add_help_option=False)(_missing_training(name))


def _missing_training(name: str):
    def command():
        raise UserError(f"'edge-ser {name}' is a training command, and the training distribution is not installed: "
                        f"{TRAINING_HINT}")
    command.__doc__ = f"{name} (needs edge-ser-train)"
    return command


_load_plugins()


class _LevelPrefix(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _log_to_stderr() -> None:
    """The library's log records (``edge_ser`` and its children) as ``warning: ...`` lines on stderr; debug
    records too with EDGE_SER_DEBUG=1.  An application that configured the logger itself keeps its handlers."""
    import os
    logger = logging.getLogger("edge_ser")
    if any(getattr(h, "_edge_ser_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelPrefix())
    handler._edge_ser_cli = True
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if os.environ.get("EDGE_SER_DEBUG") else logging.WARNING)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user mistakes into ``error: ...`` and exit code 2."""
    _log_to_stderr()
    try:  # a file name that is not UTF-8 is printed back as its original bytes, not a UnicodeEncodeError
        sys.stdout.reconfigure(errors="surrogateescape")
    except (AttributeError, ValueError):  # replaced or detached stdout (tests, embedding)
        pass
    try:
        # standalone_mode=False: a command's `raise typer.Exit(code)` comes back as the return value
        rc = app(args=argv, prog_name="edge-ser", standalone_mode=False)
    except UserError as exc:  # one line, even when a library's message spans several
        print("error: " + "; ".join(part.strip() for part in str(exc).splitlines() if part.strip()), file=sys.stderr)
        return 2
    except Exit as exc:
        return exc.exit_code
    except Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `edge-ser` or a group without a command
            print(exc.format_message())
            return 0
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # `edge-ser listen | head`: typer answers the write to the closed pipe (EPIPE)
        if exc.code == 1 and _stdout_reader_gone():  # with sys.exit(1); the reader going is not an error
            _drop_stdout()
            return 0
        raise
    except Exception as exc:  # a bug, not a user mistake; on a robot nobody reads a traceback: one line, exit 1
        import os
        if os.environ.get("EDGE_SER_DEBUG") or os.environ.get("PYTEST_CURRENT_TEST"):
            raise  # developers and the test suite see the traceback
        text = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"error: internal error ({type(exc).__name__}: {text}); EDGE_SER_DEBUG=1 shows the traceback",
              file=sys.stderr)
        return 1
    return rc if isinstance(rc, int) else 0


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is still buffered for a closed pipe does
    not fail (which would turn the exit code into 1)."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):  # no real stdout (tests, embedding): nothing to flush
        pass


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end has been closed."""
    import select
    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLERR)
        return any(event & select.POLLERR for _fd, event in poller.poll(0))
    except (OSError, AttributeError, ValueError):
        return False


if __name__ == "__main__":
    # `python -m edge_ser.cli`: run the package module's app, the one the command modules registered on
    # (this file is then also loaded as __main__, whose `app` has no commands).
    from edge_ser.cli import main as _package_main
    sys.exit(_package_main())
