"""The benchmarks' corpora: real media from Debian packages, cached outside the repo, and a tiny
generated one.

    cache             cache_dir() ($NANHU_CACHE or ~/.cache/nanhu), sha256_file()
    audio             the audio corpus: selection, split, manifest (python -m nanhu.benchmarks.corpus.audio)
    audio_sources     the music and speech packages: fetched, unpacked, listed as candidates
    audio_similarity  near-duplicates and loops, on chroma windows and spectral peaks
    video             the video corpus: plan, render, manifest (python -m nanhu.benchmarks.corpus.video)
    video_sources     photographs, music and footage: fetched, unpacked, inventoried
    video_render      camera paths, shots, soundtracks and the mp4 encode
    tiny              a tiny generated corpus in both formats, for ``nanhu bench --tiny``
"""
