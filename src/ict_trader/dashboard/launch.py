"""Starting the dashboard from the command line: address checks, the token, what to print."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ict_trader.dashboard.auth import load_token
from ict_trader.dashboard.server import Dashboard, is_loopback
from ict_trader.errors import ConfigError


def check_address(host: str, allow_remote: bool) -> None:
    """A non-loopback address only on request: the dashboard holds the kill switch."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"--dashboard-host {host}: not a loopback address; the dashboard controls the "
            "kill switch, so serving it beyond this machine needs --allow-remote"
        )


def open_dashboard(
    db: Path,
    host: str,
    port: int,
    *,
    allow_remote: bool,
    environ: Mapping[str, str],
    say: Callable[[str], None],
    token_path: Path | None = None,
) -> Dashboard:
    """Start serving `db`; raises ConfigError or DashboardError with a message for the user."""
    check_address(host, allow_remote)
    if not is_loopback(host):
        say(
            f"WARNING: the dashboard listens on {host}, reachable from other machines, over "
            "plain HTTP: anyone on the network can read your account figures, and the token "
            "crosses the network unencrypted. Prefer an SSH tunnel to 127.0.0.1."
        )
    token = load_token(environ, token_path)
    dashboard = Dashboard(db, token, host, port)
    dashboard.start()
    say(f"dashboard: {dashboard.url}")
    if token.created:
        path = token.source.removeprefix("new:")
        say(f"dashboard token (shown once; saved to {path}, readable only by you): {token.value}")
    elif token.source != "environment":
        say(f"dashboard token: in {token.source}")
    return dashboard
