"""The embedded model through the app (gunicorn, browser-like client) vs llama.cpp directly.

    .venv/bin/python -m bench.local_app [--runs 3] [--tokens 200]

Runs the same greedy answer (temperature 0, so the same tokens) through llama.cpp's own
``create_chat_completion`` in this process, and as a chat turn through the app with its default
provider, the embedded model. Tokens per second are counted from the first token to the last,
on both sides, with the app's count taken from the saved answer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from tests.peers.appserver import AppServer  # noqa: E402
from tests.peers.webclient import WebClient  # noqa: E402
from webapp.providers.local import LocalModel  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper."


def direct(tokens: int) -> float:
    llama = LocalModel.load().llama
    first = last = None
    count = 0
    for chunk in llama.create_chat_completion(
            messages=[{"role": "user", "content": PROMPT}], stream=True, temperature=0,
            max_tokens=tokens):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            count += 1
    return (count - 1) / (last - first)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args(argv)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # Titles off: a new conversation's generated title would hold the model meanwhile.
        server = AppServer(Path(tmp), {"FLASK_PROVIDERS": "local", "FLASK_TITLES": "false",
                                       "FLASK_MESSAGE_RATE_LIMIT": "1000 per minute"}).start()
        try:
            server.flask("users", "create", "bench", "--password", "bench-password")
            client = WebClient(server.base).login("bench", "bench-password")
            client.post("/settings", {
                "provider": "local", "model": "SmolLM2-135M-Instruct", "temperature": "0",
                "top_p": "1", "presence_penalty": "0", "frequency_penalty": "0",
                "max_tokens": str(args.tokens), "system_prompt": ""})
            engine = create_engine(server.env["DATABASE_URL"])
            for run in range(args.runs + 1):
                _, message_id = client.start_chat(PROMPT)
                events = client.stream(message_id, timeout=300)
                text_events = events[:-1]
                with engine.connect() as conn:
                    count = conn.execute(text("SELECT token_count FROM messages WHERE id=:i"),
                                         {"i": message_id}).scalar()
                rate = (count - 1) / (text_events[-1].at - text_events[0].at)
                if run:  # the first run loads the model in the worker: warm-up
                    ours.append(rate)
                    theirs.append(direct(args.tokens))
            engine.dispose()
        finally:
            server.stop()
    result = {"llama_cpp_tok_s": statistics.median(theirs),
              "app_tok_s": statistics.median(ours)}
    result["ratio"] = result["app_tok_s"] / result["llama_cpp_tok_s"]
    print(f"llama.cpp direct : {result['llama_cpp_tok_s']:7.1f} tokens/s "
          f"({', '.join(f'{x:.1f}' for x in theirs)})")
    print(f"through the app  : {result['app_tok_s']:7.1f} tokens/s "
          f"({', '.join(f'{x:.1f}' for x in ours)})")
    print(f"ratio            : {result['ratio']:.3f}")
    return result


if __name__ == "__main__":
    main()
