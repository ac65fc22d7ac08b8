"""Verbs that belong to no single task."""
