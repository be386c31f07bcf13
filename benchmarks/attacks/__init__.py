"""What pirates do to copies before uploading them, as the benchmarks apply it to queries.

    video        the video attacks (crops, overlays, retiming, composites ...) and ATTACKS
    video_clips  decoded clips: read a window of a file, encode back to H.264 + AAC mp4

The audio attacks are still ``benchmarks/audio_attacks.py``.
"""
