"""``edge-ser`` and ``python -m edge_ser``: the CLI (`edge_ser.cli.main`), with a Ctrl-C while its modules are still
loading ending quietly with exit code 130 instead of a traceback."""
import sys


def run() -> int:
    try:
        from .cli import main
    except KeyboardInterrupt:
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
