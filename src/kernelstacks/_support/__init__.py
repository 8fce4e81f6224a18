"""Shared support for every stage: errors, atomic files and swaps, subprocesses, uv, progress.

Nothing here knows about stack files, locks or layers; every stage may import it.
"""
