"""Runs the README's Python quick start against the installed servicetitan package.

    python tests/packaging/readme_quickstart.py README.md

The ```python blocks run in order in one namespace, as python/tests/test_readme.py runs them for the
development build; blocks with a flag (```python real-credentials, ```python fastapi: real
credentials, or packages a user adds) are only compiled. Run it
from a folder outside the checkout, so that the installed package is what gets imported. Standard
library only: it runs in a fresh virtualenv that holds nothing but the wheel.
"""

import re
import sys

BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def main(readme: str) -> None:
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    namespace = {"__name__": "__quickstart__"}
    blocks = BLOCK.findall(text)
    assert blocks, f"no ```python block in {readme}"
    for i, (flags, code) in enumerate(blocks):
        compiled = compile(code, f"{readme} block {i + 1}", "exec")
        if flags.strip() == "":
            exec(compiled, namespace)


if __name__ == "__main__":
    main(sys.argv[1])
