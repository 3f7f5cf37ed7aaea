"""The public API: what `ict_trader.__all__` promises exists, and the README's example runs and
prints what the README says it prints."""

from __future__ import annotations

import subprocess
import sys

import ict_trader
from tests.conftest import REPO


def test_every_public_name_resolves() -> None:
    for name in ict_trader.__all__:
        assert getattr(ict_trader, name) is not None, name


def test_importing_the_package_does_not_import_the_engine() -> None:
    """Lazy names: a process that needs one submodule does not pay for all of them."""
    code = "import sys, ict_trader; print('ict_trader.runtime.backtest' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_readme_example_prints_what_the_readme_shows() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == shown
