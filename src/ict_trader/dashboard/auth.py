"""The dashboard's token: what stands between a browser tab and the kill switch.

Every mutating endpoint requires it in an `Authorization: Bearer` header. Browsers never attach
that header by themselves, so another site cannot trigger a request that carries it (no CSRF),
and the page never contains it: the user types it once and the tab keeps it in sessionStorage.
It comes from `ICT_TRADER_DASHBOARD_TOKEN`, or is generated on first start and kept in a file
only the user can read (0600) — printed once then, never again, never logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ict_trader.logs import register_secret

TOKEN_ENV = "ICT_TRADER_DASHBOARD_TOKEN"
TOKEN_FILE_NAME = "dashboard-token"


def default_token_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ict-trader" / TOKEN_FILE_NAME


@dataclass(frozen=True)
class DashboardToken:
    value: str
    source: str  # "environment", the file it was read from, or "new:<file>" when just created

    @property
    def created(self) -> bool:
        return self.source.startswith("new:")

    def matches(self, presented: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed byte by byte from timings."""
        if not presented:
            return False
        # surrogateescape: a header of undecodable bytes is compared (and refused), not a 500
        given = presented.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self.value.encode("utf-8", "surrogateescape"))

    def __repr__(self) -> str:  # never print the secret by accident
        return f"DashboardToken(source={self.source!r})"


def load_token(environ: Mapping[str, str], path: Path | None = None) -> DashboardToken:
    """The environment's token, else the saved one, else a new one saved with mode 0600."""
    token = _find_or_create(environ, path)
    register_secret(token.value)
    return token


def _find_or_create(environ: Mapping[str, str], path: Path | None) -> DashboardToken:
    from_env = environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return DashboardToken(from_env, "environment")
    path = path or default_token_path(environ)
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return DashboardToken(value, str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    return DashboardToken(value, f"new:{path}")


def bearer(header: str | None) -> str | None:
    """The token from an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None
