"""Ids of the audio corpus's candidate files: unique, filesystem-safe, parent folders only on
collision."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from nanhu.benchmarks.corpus.audio_sources import unique_ids


@given(st.lists(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3),
                min_size=1, max_size=12))
def test_unique_ids_are_unique_and_filesystem_safe(paths):
    keys = ["/".join(parts) + ".ogg" for parts in paths]
    ids = unique_ids("pkg", keys)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"pkg-[a-z0-9-]+", i) for i in ids)


def test_unique_ids_add_parent_folders_only_on_collision():
    keys = ["music/a/track1.opus", "music/b/track1.opus", "music/a/menu.opus"]
    assert unique_ids("wz2100", keys) == ["wz2100-a-track1", "wz2100-b-track1", "wz2100-menu"]
    assert unique_ids("ufoai", ["base/0music.pk3!music/dawn.ogg"]) == ["ufoai-dawn"]
