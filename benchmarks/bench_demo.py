"""The README's first command, measured: ``clickloop demo`` on the embedded 1.5B with a cold LLM cache.

    .venv/bin/python benchmarks/bench_demo.py

Runs the demo in a fresh temporary cache folder for LLM answers (the model file is reused from the
usual cache, so assembly is not timed), then writes ``results/demo.json`` with the wall time, the
demo's Table 5 numbers and its LLM accounting.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, save

from clickloop.llm.models import default_cache_dir


def main() -> None:
    venv_bin = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        (cache / "models").mkdir(parents=True)
        for path in default_cache_dir().iterdir():  # the model by link, its verification records by copy
            if path.suffix == ".gguf":
                os.symlink(path, cache / "models" / path.name)
            elif path.is_file():
                shutil.copy(path, cache / "models" / path.name)
        out = Path(tmp) / "demo"
        started = time.perf_counter()
        subprocess.run([str(venv_bin / "clickloop"), "demo", "--out", str(out), "--cache-dir", str(cache)], check=True)
        wall = time.perf_counter() - started
        summary = json.loads((out / "summary.json").read_text())
    results = {
        strategy: {
            "avg_ctr": entry["avg_ctr"],
            "last_ctr": entry["last_ctr"],
            "ctr": entry["ctr"],
            "llm": entry["llm"],
        }
        for population in summary["results"].values()
        for strategy, entry in population.items()
    }
    save("demo", {"benchmark": "demo", "machine": machine(), "wall_seconds": round(wall, 1), "results": results})
    print(f"demo: {wall:.0f} s")


if __name__ == "__main__":
    main()
