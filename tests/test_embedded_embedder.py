"""An embedder shipped as a zip split over data packages: joined, extracted once, located by name."""

import io
import sys
import zipfile

import pytest

from kinject.errors import UserError
from kinject.retrieval import embedder as emb


def _split_archive(root, folder: str, files: dict[str, str], pieces: int) -> tuple[tuple[str, str], ...]:
    """Packages part0..part{pieces-1} under ``root`` holding, in order, the bytes of a zip of ``files``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"{folder}/{name}", text)
    data = buf.getvalue()
    size = -(-len(data) // pieces)
    parts = []
    for i in range(pieces):
        pkg = root / f"kinject-test-part_{i}"
        (pkg / "input").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "input" / f"a.zip.{i}").write_bytes(data[i * size:(i + 1) * size])
        parts.append((pkg.name, f"input/a.zip.{i}"))
    return tuple(parts)


def test_a_split_archive_is_joined_and_extracted_once(tmp_path, monkeypatch):
    parts = _split_archive(tmp_path / "site", "enc", {"config.json": "{}", "1_Pooling/config.json": "{}",
                                                      "desktop.ini": "x"}, pieces=3)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(emb.EMBEDDED_EMBEDDERS, "enc", emb.EmbeddedEmbedder(parts, "pip install enc", "enc"))
    path = tmp_path / "cache" / "embedders" / "enc"
    assert emb.resolve_embedder_path("enc") == str(path)
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "config.json"]
    before = (path / "config.json").stat().st_mtime_ns
    for i in range(3):  # extracted already: the packages are no longer read
        (tmp_path / "site" / f"kinject-test-part_{i}" / "input" / f"a.zip.{i}").write_bytes(b"")
    assert emb.resolve_embedder_path("enc") == str(path) and (path / "config.json").stat().st_mtime_ns == before


def test_a_missing_part_names_the_command_that_installs_it(tmp_path, monkeypatch):
    parts = (*_split_archive(tmp_path / "site", "enc", {"config.json": "{}"}, pieces=1), ("kinject_no_such_part", "x"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(emb.EMBEDDED_EMBEDDERS, "enc", emb.EmbeddedEmbedder(parts, "make embedders", "enc"))
    with pytest.raises(UserError, match=r"embedder 'enc': the package 'kinject_no_such_part' is not installed "
                                        r"\(make embedders\)"):
        emb.resolve_embedder_path("enc")
    assert not (tmp_path / "cache" / "embedders" / "enc").exists()
    assert "kinject_no_such_part" not in sys.modules
