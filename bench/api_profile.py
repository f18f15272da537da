"""Where an API call's time goes in the app's workers, measured inside them.

    .venv/bin/python -m bench.api_profile --calls 40 --tokens 50 --gap-ms 20   # one at a time
    .venv/bin/python -m bench.api_profile --calls 10 --tokens 2000 --gap-ms 0  # a burst
    .venv/bin/python -m bench.api_profile --streams 500 --sample               # 500 at once

It starts what ``bench.load --api`` starts (the fake upstream, the app under gunicorn with the
shipped config, a key), makes a few unmeasured calls, then measures ``--calls`` rounds of
``--streams`` calls at once inside both workers (``bench/profiling/sitecustomize.py``):

- by default the wall and CPU time of each stage of a call (the rate limits, the key lookup,
  ``relay.begin``, the upstream request, each token read and relayed, each event written, the
  record at the end), per call. Measure one call at a time: a stage that waits lets other
  calls run, whose CPU is then counted in it;
- with ``--sample``, where the workers' thread is, sampled every millisecond: the share of
  samples in each function, innermost (``leaf``) and anywhere on the stack (``inclusive``;
  ``gevent/hub.py:run`` is the worker waiting for something to do).

The wrappers add about a microsecond a stage, so the app's CPU per call is higher than
``bench.load`` gives. Stages the app no longer has are listed, not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import Bench, MemorySampler, _scenario, proc_cpu, summary  # noqa: E402

HOOK = Path(__file__).resolve().parent / "profiling"


def _signal(pids: list[int], number: int) -> None:
    for pid in pids:
        os.kill(pid, number)


def _collect(folder: Path, workers: list[int]) -> dict:
    """Every worker's dump, once all have written one (they do on ``SIGRTMIN+1``)."""
    files = [folder / f"worker-{pid}.json" for pid in workers]
    deadline = time.monotonic() + 30
    while not all(f.exists() for f in files):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no profile from the workers in {folder}")
        time.sleep(0.05)
    merged: dict = {"stages": {}, "leaf": {}, "inclusive": {}, "samples": 0, "missing": set()}
    for file in files:
        dump = json.loads(file.read_text())
        merged["samples"] += dump["samples"]
        merged["missing"].update(dump["missing"])
        for name, (count, wall, cpu) in dump["stages"].items():
            total = merged["stages"].setdefault(name, [0, 0.0, 0.0])
            total[0] += count
            total[1] += wall
            total[2] += cpu
        for table in ("leaf", "inclusive"):
            for name, count in dump[table].items():
                merged[table][name] = merged[table].get(name, 0) + count
    return merged


def measure(args: argparse.Namespace) -> dict:
    """Run the calls with the workers measuring; what they measured, and the calls' figures."""
    folder = Path(tempfile.mkdtemp(prefix="api-profile-"))
    env = {"PYTHONPATH": f"{HOOK}{os.pathsep}{ROOT}", "BENCH_PROFILE_DIR": str(folder),
           "BENCH_PROFILE": "sample" if args.sample else "stages"}
    prompt = _scenario(args.tokens, args.gap_ms, 0)
    with Bench(env, api=True) as bench:
        workers = MemorySampler(bench.server.proc.pid).tree()[1:]
        # More unmeasured calls: what a worker does only for its first API calls is not
        # the figure, and a round at the size measured.
        for streams in (1, 1, 1, 1, 1, args.streams):
            bench.run(streams, prompt, True)
        _signal(workers, signal.SIGRTMIN)
        turns, app_cpu = [], 0.0
        cpu_before = proc_cpu(workers)
        for _ in range(args.calls):
            done, _, cpu = bench.run(args.streams, prompt, True)
            turns += done
            app_cpu += cpu.app
        workers_cpu = proc_cpu(workers) - cpu_before
        _signal(workers, signal.SIGRTMIN + 1)
        merged = _collect(folder, workers)
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    merged["calls"] = len(turns)
    merged["summary"] = summary(turns)
    merged["app_cpu"], merged["workers_cpu"] = app_cpu, workers_cpu
    return merged


def report(result: dict, top: int) -> None:
    calls, s = result["calls"], result["summary"]
    print(f"\n{calls} calls: TTFT p50 {s['ttft_p50'] * 1000:.1f} ms, errors {s['errors']}; "
          f"the workers' CPU {result['workers_cpu'] * 1000 / calls:.2f} ms per call")
    if result["stages"]:
        print(f"  {'stage':44} {'count':>7} {'wall ms/call':>13} {'CPU ms/call':>12}")
        for name in sorted(result["stages"]):
            count, wall, cpu = result["stages"][name]
            print(f"  {name:44} {count:7d} {wall * 1000 / calls:13.3f} {cpu * 1000 / calls:12.3f}")
    if result["samples"]:
        n = result["samples"]
        for table in ("leaf", "inclusive"):
            print(f"  {table} (share of {n} samples of the workers' thread):")
            for name, count in sorted(result[table].items(), key=lambda kv: -kv[1])[:top]:
                print(f"    {100 * count / n:5.1f} %  {name}")
    if result["missing"]:
        print("  not found in the app (not timed):", ", ".join(sorted(result["missing"])))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=40, help="rounds measured")
    parser.add_argument("--streams", type=int, default=1, help="calls at once in a round")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--gap-ms", type=float, default=20)
    parser.add_argument("--sample", action="store_true",
                        help="sample the workers' stacks instead of timing the stages")
    parser.add_argument("--top", type=int, default=40, help="functions listed when sampling")
    args = parser.parse_args(argv)
    result = measure(args)
    report(result, args.top)
    return result


if __name__ == "__main__":
    main()
