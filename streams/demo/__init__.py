"""`make demo` (`python -m streams.demo`): the main job on real footage, offline and live.

A checkout only: it serves its clip with the test cameras of tests/support and is left out
of the wheel (pyproject.toml).
"""
