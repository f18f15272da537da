"""The browser's cost of an answer streaming in: long tasks and main-thread busy time.

    .venv/bin/python -m bench.browser_stream [--tokens 2000] [--gap-ms 10]

Streams ``--tokens`` tokens ``--gap-ms`` apart (100 tokens/s by default) from the fake upstream
through the app into a real page (Debian's chromium via Playwright), while a PerformanceObserver
records long tasks (over 50 ms) and Chromium's own counters give the main thread's busy time.
The measuring context bypasses the page's CSP only to install the observer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench.load import Bench, _scenario  # noqa: E402

ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OBSERVER = """
window.__longTasks = [];
new PerformanceObserver(list => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({entryTypes: ['longtask']});
"""


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--gap-ms", type=float, default=10)
    parser.add_argument("--coalesce-ms", default="", help="the app's STREAM_COALESCE_MS")
    parser.add_argument("--first-turn", action="store_true",
                        help="measure a new chat's first answer (its page opens the stream) "
                             "instead of a later turn (the post's answer is the stream)")
    parser.add_argument("--stamps", action="store_true",
                        help="tokens are 19-character timestamps (five times the text of a real "
                             "answer) instead of words of prose")
    args = parser.parse_args(argv)
    env = {"FLASK_STREAM_COALESCE_MS": args.coalesce_ms} if args.coalesce_ms else {}
    with Bench(env) as bench, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        context = browser.new_context(bypass_csp=True)
        context.add_cookies([{"name": c.name, "value": c.value, "url": bench.server.base}
                             for c in bench.client.session.cookies])
        page = context.new_page()
        page.add_init_script(OBSERVER)
        page.goto(bench.server.base + "/")
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")

        def metrics() -> dict[str, float]:
            return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}

        def busy() -> float:
            return metrics()["TaskDuration"]

        if not args.first_turn:
            page.fill("#content", _scenario(1, 0, 0))
            page.keyboard.press("Enter")
            page.wait_for_url(f"{bench.server.base}/c/*")
            page.locator(".msg-assistant.status-complete").wait_for()
        prose = "" if args.stamps else " prose=1"
        page.fill("#content", _scenario(args.tokens, args.gap_ms, 0) + prose)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{bench.server.base}/c/*")
        before = metrics()
        busy_start, wall_start = busy(), time.perf_counter()
        page.locator(".msg-assistant.status-complete").nth(0 if args.first_turn else 1).wait_for(
            timeout=args.tokens * args.gap_ms + 60000)
        wall = time.perf_counter() - wall_start
        busy_share = (busy() - busy_start) / wall
        after = metrics()
        parts = {name: (after[name] - before[name]) / wall for name in
                 ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration")}
        long_tasks = page.evaluate("window.__longTasks")
        browser.close()
    result = {"seconds": wall, "busy_share": busy_share, "long_tasks": len(long_tasks),
              "longest_task_ms": max(long_tasks, default=0.0), **parts}
    print(f"{'first' if args.first_turn else 'later'} turn, {args.tokens} "
          f"{'timestamps' if args.stamps else 'tokens of prose'} {args.gap_ms:g} ms apart "
          f"streamed in {wall:.1f} s: main thread "
          f"busy {busy_share:.1%}, {len(long_tasks)} long tasks (longest "
          f"{result['longest_task_ms']:.0f} ms); script {parts['ScriptDuration']:.1%}, "
          f"layout {parts['LayoutDuration']:.1%}, style {parts['RecalcStyleDuration']:.1%}")
    return result


if __name__ == "__main__":
    main()
