"""Run the benchmarks and write the report: `python -m benchmarks.run` (what `make bench` does).

Each benchmark is a module with NAME, TITLE, `run(ctx) -> dict`, `render(result) -> str` and
`targets(result) -> list[Target]`; adding one is adding a module to BENCHMARKS.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from app.tokens import generate_key
from benchmarks import (
    commands,
    fleet,
    hot_reload,
    http_api,
    large_fleet,
    metrics_scrape,
    periodic,
    profiles,
    start_stop,
    workers,
)
from benchmarks.context import BenchConfig, BenchContext, Option
from benchmarks.processes import REPO, BenchError, Children, cpu_reading, foreign_cpu_share
from benchmarks.report import machine, render_markdown, utc_now, write_chart, write_json
from benchmarks.service import start_database, start_fake_discord
from benchmarks.targets import Target

_log = logging.getLogger("benchmarks")


class Benchmark(Protocol):
    @property
    def NAME(self) -> str: ...  # read-only, so a module's Literal constant matches
    @property
    def TITLE(self) -> str: ...

    def run(self, ctx: BenchContext) -> dict[str, Any]: ...
    def render(self, result: dict[str, Any]) -> str: ...
    def targets(self, result: dict[str, Any]) -> list[Target]: ...


BENCHMARKS: tuple[Benchmark, ...] = (
    fleet,
    http_api,
    commands,
    hot_reload,
    metrics_scrape,
    large_fleet,
    periodic,
    workers,
    start_stop,
    profiles,
)
REPORT = "PERFORMANCE.md"
DATA = "performance.json"
CHART = "performance.png"


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """`--field-name` for every BenchConfig field declared with `option(...)`, in field order."""
    for config_field in dataclasses.fields(BenchConfig):
        declared = config_field.metadata.get(Option)
        if not isinstance(declared, Option):
            continue
        parser.add_argument("--" + config_field.name.replace("_", "-"), type=declared.parse,
                            default=config_field.default, help=declared.help)  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs", help="where the report goes (docs/)")
    parser.add_argument("--only", default=",".join(b.NAME for b in BENCHMARKS),
                        help="comma-separated benchmarks to run")  # fmt: skip
    _add_config_options(parser)
    parser.add_argument("--no-profile", action="store_true", help="skip the profiles")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    parser.add_argument("--merge", action="store_true",
                        help="keep the sections not in --only from the existing report's data")  # fmt: skip
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: rewrite the report from its data (performance.json)")  # fmt: skip
    args = parser.parse_args(argv)
    names = {b.NAME for b in BENCHMARKS}
    unknown = set(args.only.split(",")) - names
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(names)}")
    if args.runs < 1 or not args.sizes or min(args.sizes) < 1:
        parser.error("--runs and every --sizes entry must be at least 1")
    if min(args.play_bots, args.play_users, args.reload_inserts) < 1 or args.play_warm_rounds < 0:
        parser.error("--play-bots, --play-users and --reload-inserts must be at least 1")
    return args


def config_from(args: argparse.Namespace) -> BenchConfig:
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(BenchConfig) if Option in f.metadata}
    return BenchConfig(
        **options,
        profile=not args.no_profile and bool({"profiles", "start_stop"} & set(args.only.split(","))),
        chart=not args.no_chart,
    )


def _guarded(call: Callable[[dict[str, Any]], Any], result: dict[str, Any], fallback: Any) -> Any:
    """Render or judge a result; a benchmark that failed, was skipped or is pending has no numbers."""
    if result.get("status") in {"failed", "skipped"}:
        return fallback
    return call(result)


NOISY_SHARE = 0.05


def _load_note(result: dict[str, Any]) -> str:
    share = result.get("foreign_cpu_share")
    if not isinstance(share, float) or result.get("status") == "pending":
        return ""
    note = f"\n\nOther processes on the machine used {share * 100:.1f}% of its CPU while this ran"
    if share > NOISY_SHARE:
        return note + ": **the machine was not quiet, so these timings are noisier than usual**."
    return note + "."


def run_all(args: argparse.Namespace, argv: Sequence[str]) -> int:
    config = config_from(args)
    selected = [b for b in BENCHMARKS if b.NAME in args.only.split(",")]
    started, date = time.monotonic(), utc_now()
    results: dict[str, dict[str, Any]] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp, Children(Path(tmp)) as children:
        work_dir = Path(tmp)
        bots = config.max_bots({b.NAME for b in selected})
        _log.info("starting the database and a fake Discord with %d bots", bots)
        database_url, database_command = start_database(children)
        world = start_fake_discord(children, work_dir, bots=bots, guilds=config.guilds)
        ctx = BenchContext(config=config, work_dir=work_dir, children=children, database_url=database_url,
                           key=generate_key(), world=world)  # fmt: skip
        ctx.record_command("database", database_command)
        ctx.record_command("fake Discord", world.command)
        first = cpu_reading(children)
        for benchmark in selected:
            ctx.progress(f"== {benchmark.TITLE}")
            before = cpu_reading(children)
            try:
                results[benchmark.NAME] = benchmark.run(ctx)
            except BenchError as exc:
                _log.error("benchmark %s failed: %s", benchmark.NAME, exc)
                results[benchmark.NAME] = {"status": "failed", "reason": str(exc)}
                failed = True
            results[benchmark.NAME]["foreign_cpu_share"] = round(
                foreign_cpu_share(before, cpu_reading(children)), 4
            )
        last = cpu_reading(children)
        commands = dict(ctx.commands)
    meta = {
        "date": date,
        "duration_s": round(time.monotonic() - started, 1),
        "command": " ".join(["python -m benchmarks.run", *argv]),
        "machine": machine(),
        # CPU the rest of the machine used meanwhile: 0 on a quiet machine; timings are noisy above a few %.
        "foreign_cpu_share": round(foreign_cpu_share(first, last), 4),
        "config": {k: v for k, v in vars(config).items()},
    }
    rendered = {label: command.render() for label, command in commands.items()}
    out_dir: Path = args.out_dir
    if args.merge and (out_dir / DATA).exists():
        earlier = json.loads((out_dir / DATA).read_text())
        when = f"{earlier['meta']['date']}, `{earlier['meta']['command']}`"
        kept = meta.setdefault("kept_sections", dict(earlier["meta"].get("kept_sections", {})))
        for benchmark in BENCHMARKS:
            if benchmark.NAME not in results and benchmark.NAME in earlier["results"]:
                results[benchmark.NAME] = earlier["results"][benchmark.NAME]
                kept.setdefault(benchmark.NAME, when)
            else:
                kept.pop(benchmark.NAME, None)
        rendered = {**earlier.get("commands", {}), **rendered}
    write_report(out_dir, meta=meta, results=results, commands=rendered, chart=config.chart)
    _log.info("wrote %s (%.1f min)", out_dir / REPORT, (time.monotonic() - started) / 60)
    return 1 if failed else 0


def write_report(out_dir: Path, *, meta: dict[str, Any], results: dict[str, dict[str, Any]],
                 commands: dict[str, str], chart: bool) -> None:  # fmt: skip
    """performance.json, PERFORMANCE.md and (with matplotlib) performance.png from the results."""
    present = [b for b in BENCHMARKS if b.NAME in results]
    targets: list[Target] = []
    sections: list[tuple[str, str, str]] = []
    for benchmark in present:
        result = results[benchmark.NAME]
        targets.extend(_guarded(benchmark.targets, result, []))
        body = _guarded(benchmark.render, result, f"**{result.get('status')}**: {result.get('reason')}")
        sections.append((benchmark.TITLE, benchmark.NAME, body + _load_note(result)))
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = chart and write_chart(out_dir / CHART, results)
    document = {
        "meta": meta,
        "targets": [t.to_json() for t in targets],
        "commands": commands,
        "results": results,
    }
    write_json(out_dir / DATA, document)
    markdown = render_markdown(meta=meta, sections=sections, targets=targets, commands=commands,
                               chart=CHART if drawn else None)  # fmt: skip
    (out_dir / REPORT).write_text(markdown)


def render_only(args: argparse.Namespace) -> int:
    """Rewrite the report (text and chart) from performance.json, after a change to a renderer."""
    out_dir: Path = args.out_dir
    document = json.loads((out_dir / DATA).read_text())
    write_report(out_dir, meta=document["meta"], results=document["results"], commands=document["commands"],
                 chart=not args.no_chart)  # fmt: skip
    _log.info("rewrote %s from %s", out_dir / REPORT, DATA)
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through every `finally`: the children are stopped and the temporary
    # directory (logs; the fake tokens never touch the disk for long) is removed.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    arguments = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parse_args(arguments)
    if args.render_only:
        return render_only(args)
    return run_all(args, arguments)


if __name__ == "__main__":
    sys.exit(main())
