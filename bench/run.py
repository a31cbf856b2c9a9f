"""Run the suite: ``python -m bench.run [--quick] [--only receiver,e2e,keywords,memory]``.

Writes ``bench/results/<name>.json``, ``bench/results/latency.png`` and
``bench/results/summary.md``, prints the summary table, and (full runs only) replaces the
table in ``bench/README.md`` between its markers. Figures are medians of several runs and
ratios against a ceiling measured in the same run; nothing here passes or fails a build.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from bench import e2e, keywords, memory, receiver, report
from bench.common import (
    BENCH_DIR,
    RESULTS_DIR,
    ROOT,
    RunConfig,
    log,
    machine_info,
    read_json,
    use_postgres,
    write_json,
)
from bench.postgres import PrivatePostgres

BENCHMARKS = ("keywords", "receiver", "e2e", "memory")
README_START = "<!-- bench:table:start -->"
README_END = "<!-- bench:table:end -->"


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_files": len(git("status", "--porcelain").splitlines()),
    }


def latest_memory() -> dict[str, Any] | None:
    """The memory run over the most messages (``make bench-memory`` runs 100,000)."""
    best = None
    for path in RESULTS_DIR.glob("memory-*.json"):
        data = read_json(path.stem)
        if data and (best is None or data["summary"]["worker_messages"] > best["summary"]["worker_messages"]):
            best = data
    return best


def update_readme(text: str) -> None:
    readme = BENCH_DIR / "README.md"
    if not readme.exists():
        return
    content = readme.read_text()
    if README_START not in content or README_END not in content:
        return
    head, rest = content.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{text}{README_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one run each, short (< 3 minutes)")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated subset of " + ",".join(BENCHMARKS)
    )
    parser.add_argument("--memory-messages", type=int, default=None, help="worker memory run length")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the table in bench/README.md")
    parser.add_argument(
        "--shared-postgres",
        action="store_true",
        help="use the machine's Postgres (PARLEY_TEST_ADMIN_URL) instead of a private one",
    )
    args = parser.parse_args(argv)
    config = RunConfig.quick_config() if args.quick else RunConfig.full()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}")
    started = time.monotonic()
    server = None
    if not args.shared_postgres:
        try:
            server = PrivatePostgres().start()
            use_postgres(server.admin_url, server.pid)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            log(f"no private Postgres ({exc.__class__.__name__}: {exc}); using the machine's server")
            server = None
    try:
        return _run(args, config, only, started)
    finally:
        if server is not None:
            server.stop()


def _run(args: argparse.Namespace, config: RunConfig, only: list[str], started: float) -> int:
    meta = {"machine": machine_info(), "git": git_state(), "config": config, "argv": sys.argv[1:]}
    log(f"machine: {meta['machine']}")
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    for name in BENCHMARKS:
        if name not in only:
            continue
        t0 = time.monotonic()
        log(f"--- {name}")
        try:
            if name == "keywords":
                results[name] = keywords.run(config)
            elif name == "receiver":
                results[name] = receiver.run(config)
            elif name == "e2e":
                results[name] = e2e.run(config)
            else:
                results[name] = memory.run(config, args.memory_messages)
        except Exception as exc:  # one broken benchmark must not cost the others' figures
            log(f"{name} failed: {exc.__class__.__name__}: {exc}")
            failures[name] = f"{exc.__class__.__name__}: {exc}"[:500]
        timings[name] = round(time.monotonic() - t0, 1)
    # Benchmarks not asked for this time: show their latest stored results (meta says which ran).
    for name in BENCHMARKS:
        if name not in results and name not in only:
            previous = latest_memory() if name == "memory" else read_json(name)
            if previous is not None:
                results[name] = previous
    if "memory" in results and "memory" in only:
        best = latest_memory()
        if best is not None and best["summary"]["worker_messages"] > results["memory"]["summary"]["worker_messages"]:
            meta["memory_shown"] = "the longest stored run, not this one"
            results["memory"] = best
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["seconds_by_benchmark"] = timings
    meta["ran"] = only
    meta["failed"] = failures
    write_json("meta", meta)
    text = report.table(results)
    chart = report.chart(results)
    footer = (
        f"\n_{meta['machine']['when']}, commit {meta['git']['commit']} (+{meta['git']['dirty_files']} uncommitted files), "
        f"{meta['machine']['cores']} cores, load average at start {meta['machine']['load_average_at_start']}, "
        f"{'quick' if config.quick else 'full'} run of {', '.join(only)} in {meta['seconds']:.0f} s. "
        f"Postgres {meta['machine'].get('postgres_server_version')} "
        f"({'private server' if meta['machine'].get('postgres_private_server') else 'shared server'}), "
        f"synchronous_commit={meta['machine'].get('postgres_synchronous_commit')}._\n"
    )
    stored = [name for name in BENCHMARKS if name in results and name not in only]
    if stored:
        footer += f"_Rows of {', '.join(stored)}: the latest stored results (bench/results/), not this run._\n"
    if failures:
        footer += "\n" + "".join(f"- **{k} failed** this run: {v}\n" for k, v in failures.items())
    (RESULTS_DIR / "summary.md").write_text(text + footer)
    print(text + footer)
    log(f"chart: {chart}")
    if not config.quick and not args.no_readme:
        update_readme(text + footer)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
