"""What the tests and benchmarks need beside the code under test (never in the wheel)."""
