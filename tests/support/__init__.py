"""Builders shared by test suites that need more than one suite's fixtures (registry, images)."""
