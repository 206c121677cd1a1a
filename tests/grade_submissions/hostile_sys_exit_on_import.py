"""Hostile: exits as soon as it is imported."""
import sys

sys.exit(0)
