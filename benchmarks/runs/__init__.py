"""Benchmark runs: the measured sections of ``nanhu bench``.

    video            the video recall benchmark: catalog, baseline, run, ``nanhu bench video``
    video_screening  each attacked query screened three ways; the clips and negatives drawn
    video_measures   recall, false matches, localisation, µAP and latency from the records
    video_scale      search + alignment at a million keyframes, flat against HNSW
    video_report     the video section of the report: tables and the per-attack plot
    audio_verify_null  the peak check's null, its calibration and what it recovers (docs/audio.md)

The other runs (audio_bench, scale_audio, server_bench, ingest_bench, reliability, ...) are
still modules of ``benchmarks`` itself.
"""
