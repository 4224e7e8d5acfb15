"""Metrics, baselines, benchmark runners."""
