"""The error answer every part of the emulator raises: Alpaca's status and JSON body.

Its own module so that the parts the paper account uses (option order checks, contract routes)
can raise it without importing the paper account.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answer: status and the JSON body Alpaca would send."""

    def __init__(self, status: int, code: int | None, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, **extra}
        if code is not None:
            self.body = {"code": code, **self.body}
