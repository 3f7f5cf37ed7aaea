"""Notifications: what is said (the notifier), how it travels (apprise, Pushover) and the outbox
that keeps a slow channel from delaying trading.
"""
