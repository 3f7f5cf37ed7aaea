"""The store's well-known state keys: written by the runtimes, read by status, health and the
dashboard. One place, so a writer and its readers cannot drift apart."""

from __future__ import annotations

LAST_BAR_KEY = "last_bar_time"  # the last bar processed (UTC, ISO)
HEARTBEAT_KEY = "heartbeat"  # health: the live loop's last pass (UTC, ISO)
BROKER_OK_KEY = "broker_ok"  # health: "1" if the last broker call succeeded, else "0"
BROKER_CHECKED_KEY = "broker_checked_at"
BROKER_ERROR_KEY = "broker_last_error"  # already masked
