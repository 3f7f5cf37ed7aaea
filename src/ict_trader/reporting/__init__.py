"""Figures for people: metrics, summaries, the HTML report, status and health."""
