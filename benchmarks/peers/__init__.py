"""Other fingerprinters run on the benchmarks' own queries, to set Nanhu's figures beside.

    audfprint             the audio peer: audfprint (PyPI audfprint2) driven through its library
    audfprint_comparison  its side-by-side run on the audio benchmark's queries; choosing TUNED
    pdq                   the video baseline: Meta's PDQ per frame, matched with vPDQ's rule
"""
