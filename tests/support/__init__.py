"""What the tests (and `make demo`, and the benchmarks) need beside the product: loopback
RTSP test cameras (`testcam`) and street scenes composed from real footage (`scenes`).
Never in the wheel."""
