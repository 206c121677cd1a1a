"""Implementations under test for the checker's own tests (loaded by file path or as modules)."""
