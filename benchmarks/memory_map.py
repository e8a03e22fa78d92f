"""Where a process's resident memory is, mapping by mapping, from ``/proc/<pid>/smaps``.

    from memory_map import snapshot, grew
    before = snapshot()
    ...                                  # the work
    for row in grew(before, snapshot())[:10]:
        print(row)

A soak that only reads VmRSS says *that* memory grew; this says where:
the model file's pages (file-backed, shared with the page cache), the
heap and malloc's per-thread arenas, or one large anonymous block (a
cache, a buffer pool). Linux only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$")


@dataclass(frozen=True)
class Mapping:
    start: int
    size_kb: int
    rss_kb: int
    anon_kb: int
    name: str  # the file, "[heap]", "[stack]", or "" for an anonymous block

    @property
    def label(self) -> str:
        if self.name.startswith("/"):
            return os.path.basename(self.name)
        return self.name or f"anonymous {self.size_kb // 1024} MB block"


def snapshot(pid: int | str = "self") -> dict[int, Mapping]:
    """Every mapping of the process, keyed by its start address."""
    maps: dict[int, Mapping] = {}
    head = None
    fields: dict[str, int] = {}

    def close() -> None:
        if head is not None:
            start, end, name = head
            maps[start] = Mapping(start, (end - start) // 1024, fields.get("Rss", 0), fields.get("Anonymous", 0), name)

    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = _HEADER.match(line)
            if m:
                close()
                head = (int(m.group(1), 16), int(m.group(2), 16), m.group(3).strip())
                fields = {}
            elif line.endswith(" kB\n"):
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0])
    close()
    return maps


def totals(maps: dict[int, Mapping]) -> dict[str, float]:
    """Resident MB: all of it, the anonymous part (the process's own) and the file-backed part."""
    rss = sum(m.rss_kb for m in maps.values()) / 1024
    anon = sum(m.anon_kb for m in maps.values()) / 1024
    return {"rss_mb": rss, "anon_mb": anon, "file_mb": rss - anon}


def by_label(maps: dict[int, Mapping]) -> dict[str, float]:
    """Resident MB per file (all its mappings together) and per kind of anonymous memory."""
    out: dict[str, float] = {}
    for m in maps.values():
        # Unnamed blocks up to 64 MB are malloc's: its arenas' heaps, and the blocks it maps one by one.
        key = "malloc arenas and small blocks" if not m.name and m.size_kb <= 65536 else m.label
        out[key] = out.get(key, 0.0) + m.rss_kb / 1024
    return out


def grew(before: dict[int, Mapping], after: dict[int, Mapping]) -> list[tuple[str, float, float]]:
    """(what, MB before, MB after) for each label, the largest growth first."""
    a, b = by_label(before), by_label(after)
    rows = [(k, a.get(k, 0.0), b.get(k, 0.0)) for k in a.keys() | b.keys()]
    return sorted(rows, key=lambda r: r[2] - r[1], reverse=True)
