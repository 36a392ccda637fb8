"""The Python code blocks of the quick start run as written (against the embedded sandbox).

Blocks fenced as ```python run in order in one namespace; blocks with a flag (```python
real-credentials, ```python fastapi) are only compiled here (test_webhooks.py runs the FastAPI one).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "README.md"

BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in BLOCK.finditer(QUICKSTART.read_text())]


def test_the_quick_start_has_examples() -> None:
    assert len([b for b in blocks() if b[0] == ""]) >= 2


def test_the_quick_start_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "__quickstart__"}
    for i, (flags, code) in enumerate(blocks()):
        compiled = compile(code, f"{QUICKSTART.name} block {i + 1}", "exec")
        if flags == "":
            exec(compiled, namespace)
    out = capsys.readouterr().out
    assert "customers on page 1" in out and "404" in out
