"""The SQLite store (ledger, state, audit, control requests) and its lock."""
