"""The web dashboard: a local page over the SQLite store, with the kill switch behind a token."""
