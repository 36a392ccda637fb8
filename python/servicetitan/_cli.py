"""The ``servicetitan`` command, as the console script that ``pip install`` puts on the PATH.

The command line is the Rust one (the ``servicetitan-cli`` crate), so ``servicetitan`` behaves
the same whether it came from pip, npm or cargo: ``servicetitan --help``.
"""

from __future__ import annotations

import signal
import sys
from typing import Optional, Sequence

from ._native import run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``servicetitan`` with ``argv`` (default: the process's arguments) and returns its exit code."""
    return _run("servicetitan", argv)


def tap_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tap-servicetitan``: ``servicetitan tap``, under the name Singer runners such as Meltano start
    an extractor by (``tap-servicetitan --config FILE ...``)."""
    return _run("tap-servicetitan", argv)


def _run(program: str, argv: Optional[Sequence[str]]) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # Python turns Ctrl-C into KeyboardInterrupt, which cannot interrupt native code: the
    # default handler stops the command at once, as it stops the Rust binary.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    return run_cli([program, *args])


if __name__ == "__main__":
    sys.exit(main())
