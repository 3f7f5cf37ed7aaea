"""The documentation a user reads stays true: its links lead somewhere the repository holds, and
docs/signal.md's test vectors are what the detector computes on the real data."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.marketdata.barfile import load_bars
from ict_trader.signals import SignalParams, detect_signals
from tests.conftest import DEV_YEAR, REPO, SAMPLE_CSV

# Every Markdown page a user of the repository may open (.venv and .tools hold others' pages).
PAGES = [
    REPO / "README.md",
    *sorted(page for folder in ("docs", "src", "tests") for page in (REPO / folder).rglob("*.md")),
]
# [text](target) — the target up to whitespace or the closing parenthesis
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:
MINUS = "\N{MINUS SIGN}"
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))  # code blocks hold no links
    return [target for target in LINK.findall(text) if not EXTERNAL.match(target)]


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces become hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def _ignored_by_git(paths: list[Path]) -> set[Path]:
    """Files git ignores (a demo store, test output) exist here but never in a clone."""
    if not paths or not (REPO / ".git").exists():
        return set()
    answer = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--stdin"],
        input="\n".join(str(path) for path in paths),
        capture_output=True,
        text=True,
        check=False,
    )
    assert answer.returncode in {0, 1}, answer.stderr  # 1: none of them is ignored
    return {Path(line) for line in answer.stdout.splitlines()}


def test_the_pages_have_relative_links_to_check() -> None:
    """The link check below means something only if it finds links."""
    assert "docs/signal.md" in _links(REPO / "README.md")
    assert "../README.md#configuration" in _links(REPO / "docs" / "signal.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_point_into_the_repository(page: Path) -> None:
    targets = []
    for target in _links(page):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        targets.append((target, resolved, anchor))
    inside = [resolved for _, resolved, _ in targets if resolved.is_relative_to(REPO)]
    ignored = _ignored_by_git([path for path in inside if path.exists()])
    broken = []
    for target, resolved, anchor in targets:
        if not resolved.is_relative_to(REPO) or not resolved.exists() or resolved in ignored:
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert broken == [], f"{page.relative_to(REPO)}: broken links: {broken}"


@dataclass(frozen=True)
class _Vectors:
    """One data file's vectors as docs/signal.md states them."""

    count: int
    rows: list[tuple[str, str, float, float, float, float]]  # time, direction, close, ATR, …
    without_fvg: int


def _documented(path: Path) -> _Vectors:
    text = (REPO / "docs" / "signal.md").read_text(encoding="utf-8")
    heading = f"**`{path.relative_to(REPO)}`**"
    assert heading in text, f"docs/signal.md has no vectors for {path.name}"
    section = text.split(heading, 1)[1].split("\n**`", 1)[0]
    count = re.search(r"\*\*(\d+) signals\*\*", section)
    without_fvg = re.search(r"`require_fvg=false`: (\d+) signals", section)
    assert count is not None and without_fvg is not None
    row = re.compile(
        r"^\| (\S+Z) \| (short|long) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
        re.MULTILINE,
    )
    rows = [
        (time, direction, float(close), float(atr), float(extreme), float(mss))
        for time, direction, close, atr, extreme, mss in row.findall(section)
    ]
    return _Vectors(int(count.group(1)), rows, int(without_fvg.group(1)))


@pytest.mark.parametrize(("path", "listed"), [(DEV_YEAR, 6), (SAMPLE_CSV, 3)])
def test_signal_page_vectors_are_the_detectors(path: Path, listed: int) -> None:
    documented = _documented(path)
    assert len(documented.rows) == listed
    bar_file = load_bars(path)
    found = detect_signals(bar_file.bars, bar_file.calendar)
    assert documented.count == len(found)
    assert documented.rows == [
        (
            s.time.strftime("%Y-%m-%dT%H:%MZ"),
            s.direction.value,
            s.close,
            round(s.atr, 4),
            round(s.extreme, 4),
            round(s.mss_level, 4),
        )
        for s in found[:listed]
    ]
    without_fvg = detect_signals(bar_file.bars, bar_file.calendar, SignalParams(require_fvg=False))
    assert documented.without_fvg == len(without_fvg)


def test_dev_year_direction_counts_on_the_page() -> None:
    text = (REPO / "docs" / "signal.md").read_text(encoding="utf-8")
    bar_file = load_bars(DEV_YEAR)
    found = detect_signals(bar_file.bars, bar_file.calendar)
    short = sum(s.direction == "short" for s in found)
    assert f"**{len(found)} signals**, {short} short and {len(found) - short} long" in text


def _dollars(amount: float) -> str:
    """As the README writes money: +$22.51, and a loss with a minus sign (U+2212)."""
    return f"{'+' if amount >= 0 else MINUS}${abs(amount):,.2f}"


def test_the_readmes_options_table_is_what_its_example_settings_give(tmp_path: Path) -> None:
    """The README's dev-year table of shares and a model-priced options profile, re-run with
    the command and the settings file it names."""
    out = tmp_path / "options.json"
    args = ["backtest", "--data", str(DEV_YEAR), "--slippage-bps", "1", "--json", str(out)]
    shown = CliRunner().invoke(app, [*args, "--config", str(REPO / "examples" / "options.toml")])
    assert shown.exit_code == 0, shown.output
    metrics = json.loads(out.read_text())["metrics"]
    profiles = ("conservative", "aggressive", "calls_puts")
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    totals = " | ".join(_dollars(metrics[name]["total_pnl"]) for name in profiles)
    assert f"| total P&L for the year | {totals} |" in text
    trades = [metrics[name]["trades"] for name in profiles]
    assert f"| trades | {trades[0]} | {trades[1]} | {trades[2]} (" in text
