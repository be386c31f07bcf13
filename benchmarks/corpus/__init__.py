"""The benchmarks' real-media corpora, built from Debian packages into a cache outside the repo.

    cache             cache_dir() ($NANHU_CACHE or ~/.cache/nanhu), sha256_file()
    audio             the audio corpus: selection, split, manifest (python -m benchmarks.corpus.audio)
    audio_sources     the music and speech packages: fetched, unpacked, listed as candidates
    audio_similarity  near-duplicates and loops, on chroma windows and spectral peaks
"""
