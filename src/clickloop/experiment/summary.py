"""Aggregate a run folder's iteration files into ``summary.json`` (the report's only input).

Per population and strategy: ``ctr`` and ``mean_score`` per iteration (IP_0..IP_I, mean over cells),
``avg_ctr`` (mean of ctr[1:], the iterations after IP_0; ctr[0] if there are none), ``last_ctr``,
summed ``sessions``/``clicks`` per iteration (for z-tests), per-cell curves, LLM accounting and
``skipped_steps`` (iterations whose new items the LLM failed to write, pool carried over).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clickloop.experiment.cell import CellSpec
from clickloop.experiment.config import ExperimentConfig
from clickloop.experiment.files import read_json


def _cell_records(cell_dir: Path) -> list[dict[str, Any]]:
    records = []
    i = 0
    while (path := cell_dir / f"iter-{i:03d}.json").is_file():
        records.append(read_json(path))
        i += 1
    return records


def _add_usage(total: dict[str, dict[str, float]], usage: dict[str, dict[str, float]]) -> None:
    for role, values in usage.items():
        bucket = total.setdefault(role, {})
        for key, value in values.items():
            bucket[key] = round(bucket.get(key, 0) + value, 6)


def summarize(out: Path, cells: list[CellSpec], config: ExperimentConfig, versions: dict[str, str]) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for spec in cells:
        records = _cell_records(out / "cells" / spec.path)
        entry = results.setdefault(spec.population.name, {}).setdefault(
            spec.strategy.name, {"cells": [], "llm": {}, "failed_cells": [], "skipped_steps": 0}
        )
        if (out / "cells" / spec.path / "error.json").is_file():
            entry["failed_cells"].append(str(spec.path))
        if not records:
            continue
        entry["cells"].append(
            {
                "topic": spec.topic,
                "seed": spec.seed,
                "ctr": [r["pool_ctr"] for r in records],
                "mean_score": [r["mean_score"] for r in records],
                "sessions": [r["n_sessions"] for r in records],
                "clicks": [r["sessions_with_click"] for r in records],
            }
        )
        for r in records:
            _add_usage(entry["llm"], r.get("llm", {}))
            entry["skipped_steps"] += "step_error" in r
    for strategies in results.values():
        for entry in strategies.values():
            cells_ = entry["cells"]
            # a partially finished run: aggregate over the iterations every cell has reached
            length = min((len(c["ctr"]) for c in cells_), default=0)
            entry["complete"] = bool(cells_) and length == config.iterations + 1 and not entry["failed_cells"]
            for key in ("ctr", "mean_score"):
                entry[key] = [float(np.mean([c[key][i] for c in cells_])) for i in range(length)]
            for key in ("sessions", "clicks"):
                entry[key] = [int(sum(c[key][i] for c in cells_)) for i in range(length)]
            ctr = entry["ctr"]
            entry["avg_ctr"] = float(np.mean(ctr[1:])) if len(ctr) > 1 else (ctr[0] if ctr else None)
            entry["last_ctr"] = ctr[-1] if ctr else None
    return {
        "config": config.model_dump(),
        "versions": versions,
        "iterations": config.iterations,
        "results": results,
    }
