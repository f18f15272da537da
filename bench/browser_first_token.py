"""First-token time of a chat turn in a real browser, with the embedded model.

    .venv/bin/python -m bench.browser_first_token [--runs 5] [--max-tokens N]

Starts the app under gunicorn with the shipped config on a fresh database (default provider:
the embedded SmolLM2), signs in with Debian's chromium through Playwright, and for each run
starts a new chat and measures, from the Enter key to the first answer text in the page, and to
the finished (markdown-rendered) answer, whatever way it ended (an answer that stopped or
failed is reported with its status, not waited on forever). Prints each run and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from tests.peers.appserver import AppServer

ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: An answer that ended, however: complete, stopped or failed.
ENDED = ", ".join(f".msg-assistant.status-{status}" for status in ("complete", "stopped", "error"))
#: Longest wait for one answer before the run is reported as stuck.
ANSWER_SECONDS = 600
PROMPTS = ["What is the capital of France?", "Name three colours.", "Say hello in Spanish.",
           "What is two plus two?", "Tell me a fun fact about cats."]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=0,
                        help="the embedded model's answer length (default: the app's)")
    args = parser.parse_args(argv)
    env = {"FLASK_LOCAL_MAX_TOKENS": str(args.max_tokens)} if args.max_tokens else {}
    # Each run is a new conversation: its generated title would keep the model busy when the
    # next run asks it for an answer.
    env["FLASK_TITLES"] = "false"
    firsts, totals = [], []
    with tempfile.TemporaryDirectory() as tmp:
        server = AppServer(Path(tmp), env=env).start()
        try:
            server.flask("users", "create", "bench", "--password", "bench-password")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                     args=ARGS)
                page = browser.new_page()
                page.goto(server.base + "/login")
                page.fill("#username", "bench")
                page.fill("#password", "bench-password")
                page.click("button[type=submit]")
                page.wait_for_url(server.base + "/")
                for i in range(args.runs + 1):  # the first run loads the model: warm-up
                    page.goto(server.base + "/")
                    page.fill("#content", PROMPTS[i % len(PROMPTS)])
                    started = time.perf_counter()
                    page.keyboard.press("Enter")
                    first = None
                    while True:
                        if time.perf_counter() - started > ANSWER_SECONDS:
                            raise RuntimeError(f"no answer ended within {ANSWER_SECONDS} s")
                        try:
                            if page.locator(ENDED).count():
                                break
                            texts = page.locator(".msg-assistant .streaming").all_inner_texts()
                        except PlaywrightError:  # the page is changing to the new chat's
                            continue
                        if first is None and texts and texts[0].strip():
                            first = time.perf_counter() - started
                        time.sleep(0.005)
                    total = time.perf_counter() - started
                    first = first if first is not None else total
                    label = "warm-up" if i == 0 else f"run {i}"
                    status = page.locator(ENDED).first.get_attribute("data-status")
                    print(f"{label}: first token {first * 1000:.0f} ms, answer {total:.2f} s"
                          f" ({status})")
                    if i:
                        firsts.append(first)
                        totals.append(total)
                browser.close()
        finally:
            server.stop()
    result = {"first_token_ms": statistics.median(firsts) * 1000,
              "answer_s": statistics.median(totals)}
    print(f"median first token {result['first_token_ms']:.0f} ms, "
          f"median answer {result['answer_s']:.2f} s")
    return result


if __name__ == "__main__":
    main()
