"""The experiment runner: the grid of cells, concurrency, progress, the run folder and its summary.

Run folder::

    OUT/config.json                       resolved configuration and versions
    OUT/cells/<population>/<strategy>/<topic>/seed-N/iter-NNN.json
    OUT/cells/.../error.json              why a cell stopped and its retry number (removed when it later succeeds)
    OUT/summary.json                      per population and strategy: ctr, mean_score, avg/last CTR

Rerunning the same command skips finished iterations and serves repeated LLM requests from the cache;
a cell that stopped on malformed LLM output is asked anew from its failed iteration on
(:func:`clickloop.experiment.cell.retry_number`). A run that fails before finishing anything leaves
nothing behind in a new folder.
"""

from __future__ import annotations

import platform
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from clickloop.domains.loader import Domain, load_domain
from clickloop.errors import ConfigurationError
from clickloop.experiment.cell import CELL_ERRORS, RETRY_SEED_STRIDE, CellDeps, CellSpec, retry_number, run_cell
from clickloop.experiment.config import RESULT_FIELDS, ExperimentConfig
from clickloop.experiment.files import read_json, write_json_atomic
from clickloop.experiment.summary import summarize
from clickloop.judges import make_judge
from clickloop.judges.base import ScoreBook
from clickloop.llm.base import Accounting, LLMBackend
from clickloop.llm.cache import Accounted, Cached, ResponseCache
from clickloop.llm.registry import make_backend
from clickloop.simulator.click_model import ClickModel
from clickloop.simulator.serving import make_serving
from clickloop.strategies import ItemConstraints, ItemWriter, Strategy, make_strategy


def versions() -> dict[str, str]:
    """Versions of everything that can change a result."""
    out = {"python": platform.python_version()}
    for package in ("clickloop", "numpy", "xllamacpp", "openai", "pydantic"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class RunOutcome:
    out: Path
    summary: dict[str, Any]
    failures: list[dict[str, str]] = field(default_factory=list)


def check_pool_counts(strategy: Strategy, pool_size: int, k_shown: int, iterations: int) -> None:
    """Refuse a strategy whose counts break the pool within ``iterations``: one that drops more items
    than the pool holds, or whose net change per iteration (written minus dropped) takes the pool below
    ``k_shown``. Strategies without ``items_per_step`` (guided-ee, fixed-pool keep |IP|) are not checked."""
    items_per_step = getattr(strategy, "items_per_step", None)
    if items_per_step is None:
        return
    n_new, n_drop = items_per_step()
    names: list[str] = [f.name for f in fields(strategy) if f.name.startswith("n_")] if is_dataclass(strategy) else []
    counts = ", ".join(f"{name}={getattr(strategy, name)}" for name in names)
    option = f"strategy_options.{strategy.name}"
    size = pool_size
    for iteration in range(1, iterations + 1):
        if n_drop > size:
            raise ConfigurationError(
                f"{option} ({counts}) drops {n_drop} items per iteration, but at iteration {iteration} the pool "
                f"holds {size} (pool_size {pool_size}); lower n_drop to at most {size} or raise pool_size",
                field=option,
            )
        size += n_new - n_drop
        if size < k_shown:
            raise ConfigurationError(
                f"{option} ({counts}) writes {n_new} and drops {n_drop} items per iteration, so the pool shrinks "
                f"from pool_size {pool_size} to {size} at iteration {iteration}, below k_shown ({k_shown}); "
                f"write as many items as are dropped (n_drop={n_new}), or lower iterations to {iteration - 1}, "
                "or raise pool_size",
                field=option,
            )


def plan_cells(config: ExperimentConfig, domain: Domain) -> list[CellSpec]:
    """Every cell of the grid; builds strategies and populations and checks their counts against the pool,
    so bad ids and counts fail here, before any LLM call."""
    populations = [domain.population(spec) for spec in config.populations]
    strategies = [make_strategy(name, **config.strategy_options.get(name, {})) for name in config.strategies]
    make_serving(config.serving)
    for strategy in strategies:
        make_serving(getattr(strategy, "serving", config.serving))
        pool_size = int(getattr(strategy, "initial_pool_size", config.pool_size))
        check_pool_counts(strategy, pool_size, config.k_shown, config.iterations)
    return [
        CellSpec(population, strategy, topic, seed)
        for population in populations
        for strategy in strategies
        for topic in config.topics
        for seed in config.seeds
    ]


def check_run_folder(out: Path, config: ExperimentConfig) -> None:
    """Refuse to resume a folder whose finished iterations were made under other settings."""
    path = out / "config.json"
    if not path.is_file():
        return
    previous = read_json(path).get("config", {})
    changed = [k for k in RESULT_FIELDS if k in previous and previous[k] != getattr(config, k)]
    if changed:
        details = ", ".join(f"{k}: {previous[k]!r} -> {getattr(config, k)!r}" for k in changed)
        raise ConfigurationError(
            f"{out} holds a run made with other settings ({details}); use a new --out folder or the old settings"
        )


def run_experiment(
    config: ExperimentConfig,
    out: Path,
    backend: LLMBackend | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Run (or resume) the grid into ``out``. ``backend`` overrides ``config.llm`` (tests pass a fake).

    ``progress(done, total)`` is called after every finished iteration of any cell.
    """
    domain = load_domain(config.domain)
    cells = plan_cells(config, domain)
    click_model = ClickModel(config.temperature, config.rejection_score, config.k_shown)
    for spec in cells:
        click_model.check_pool_size(spec.pool_size(config.pool_size))
    check_run_folder(out, config)
    created, fresh = not out.exists(), not (out / "config.json").is_file()
    llm = backend or make_backend(
        config.llm, base_url=config.base_url, n_parallel=config.llm_parallel, cache_root=config.resolved_cache_dir()
    )
    if config.llm.startswith("openai"):
        from clickloop.llm.retrying import Retrying

        llm = Retrying(llm)
    if not config.no_cache:
        llm = Cached(llm, ResponseCache(config.resolved_cache_dir() / "llm-cache.sqlite"))
    make_judge(config.judge, domain, llm, config.judge_mode, seed=0)  # validate the judge id up front
    run_info = {"config": config.model_dump(), "versions": versions()}
    write_json_atomic(out / "config.json", run_info)

    constraints = ItemConstraints(domain.max_words, banned_words=domain.banned_words)
    total = len(cells) * (config.iterations + 1)
    done = 0
    lock = threading.Lock()
    failures: list[dict[str, str]] = []

    def tick() -> None:
        nonlocal done
        with lock:
            done += 1
            if progress:
                progress(done, total)

    def run_one(spec: CellSpec) -> None:
        cell_dir = out / "cells" / spec.path
        retry = retry_number(cell_dir)
        seed = spec.seed + RETRY_SEED_STRIDE * retry
        accounting = Accounting()
        cell_llm = Accounted(llm, accounting)
        judge = make_judge(config.judge, domain, cell_llm, config.judge_mode, seed=seed)
        writer = ItemWriter(domain, cell_llm, constraints, config.generator_temperature, config.max_attempts, seed=seed)
        deps = CellDeps(
            domain.name,
            writer,
            ScoreBook(judge),
            accounting,
            click_model,
            config.n_sessions,
            config.pool_size,
            run_info,
            config.skip_failed_steps,
            config.serving,
            retry,
        )
        try:
            run_cell(spec, deps, cell_dir, config.iterations, on_iteration=tick)
            (cell_dir / "error.json").unlink(missing_ok=True)
        except CELL_ERRORS as exc:
            failure = {"cell": str(spec.path), "error": f"{type(exc).__name__}: {exc}"}
            write_json_atomic(cell_dir / "error.json", {**failure, "retry": retry, "traceback": traceback.format_exc()})
            with lock:
                failures.append(failure)

    workers = config.concurrency or max(1, llm.max_concurrency)
    try:
        if workers == 1:
            for spec in cells:
                run_one(spec)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run_one, cells))
    except BaseException:
        if fresh and not _wrote_cells(out):
            # failed at start-up (server unreachable, model missing, Ctrl-C while loading): a new folder
            # must not look like a run
            _discard(out, created)
        else:
            write_json_atomic(out / "summary.json", summarize(out, cells, config, versions()))
        raise
    finally:
        if backend is None:
            llm.close()  # frees the local model this run loaded; a caller's backend is the caller's
    summary = summarize(out, cells, config, versions())
    write_json_atomic(out / "summary.json", summary)
    return RunOutcome(out, summary, failures)


def _wrote_cells(out: Path) -> bool:
    cells = out / "cells"
    return cells.is_dir() and any(path.is_file() for path in cells.rglob("*"))


def _discard(out: Path, created: bool) -> None:
    """Remove what this run wrote into ``out``: config.json and empty cell folders (and ``out``, if new)."""
    (out / "config.json").unlink(missing_ok=True)
    cells = out / "cells"
    folders = [cells, *cells.rglob("*")] if cells.is_dir() else []
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
    if created:
        try:
            out.rmdir()
        except OSError:
            pass
