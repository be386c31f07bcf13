"""Benchmarks: real-media corpus builders, attack suite, recall/speed/memory runs, reports."""
