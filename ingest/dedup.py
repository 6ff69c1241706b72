"""Near-duplicate passages across (and within) documents.

Web copies repeat whole passages. Each chunk is reduced to a set of hashed character 5-grams of
its normalised text; chunks sharing one of their smallest hashes (a bottom-k sketch) are
compared by containment, and a chunk mostly contained in an earlier one is marked as its
duplicate. Retrieval indexes the kept chunk only, which remembers every place it appears.
"""

from __future__ import annotations

import zlib
from collections import defaultdict

from ingest.models import Chunk
from ingest.normalize import normalize

SHINGLE = 5
SKETCH = 8


def shingles(text: str) -> set[int]:
    t = "".join(ch for ch in normalize(text) if ch.isalnum())
    if len(t) < SHINGLE:
        return {zlib.crc32(t.encode())} if t else set()
    return {zlib.crc32(t[i : i + SHINGLE].encode()) for i in range(len(t) - SHINGLE + 1)}


def mark_duplicates(chunks: list[Chunk], threshold: float = 0.8, min_chars: int = 30) -> int:
    """Set ``dup_of`` on chunks whose text is ≥ ``threshold`` contained in an earlier, longer or
    equal chunk, and add their places to the kept chunk's ``also_in``. Returns the number marked.

    Chunks are visited in order (documents sorted by name), so the first copy is kept."""
    for c in chunks:
        c.dup_of = ""
        c.also_in = []
    sets = [shingles(c.text) for c in chunks]
    buckets: dict[int, list[int]] = defaultdict(list)
    by_id = {c.id: c for c in chunks}
    marked = 0
    for i, c in enumerate(chunks):
        s = sets[i]
        if len(c.text) < min_chars or not s:
            continue
        sketch = sorted(s)[:SKETCH]
        candidates = {j for h in sketch for j in buckets.get(h, ())}
        best, best_score = None, 0.0
        for j in candidates:
            other = sets[j]
            if len(other) < len(s) * 0.8:
                continue
            score = len(s & other) / len(s)
            if score > best_score:
                best, best_score = j, score
        if best is not None and best_score >= threshold:
            kept = chunks[best]
            root = by_id[kept.dup_of] if kept.dup_of else kept
            c.dup_of = root.id
            root.also_in.append((c.source, c.start, c.end))
            marked += 1
            continue
        for h in sketch:
            buckets[h].append(i)
    return marked
