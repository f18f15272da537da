"""First token of the embedded model on a 50-turn conversation: before and after fitting the
history to the context window.

    .venv/bin/python -m bench.long_conversation [--turns 50] [--runs 2]

A conversation of ``--turns`` exchanges (a question and a short answer each) gets one more
question, then four more, each after the model's answer (the same conversation going on).
Each is timed from the call to the first token, through ``LocalModel`` with greedy decoding:

- before: what the app sent until now: the history bounds only (``MAX_HISTORY_MESSAGES`` 40,
  ``MAX_HISTORY_CHARS`` 24000), the old 512-token default answer length;
- after: the same bounds, then ``LocalModel.fit_history`` (oldest turns dropped to fit the
  window with room for the answer) and ``align_history`` (cut by steps of 8, so the next
  turn starts the same way and llama.cpp reuses what it read), the new 1024-token default.

The first question of each run starts cold (another conversation was read last); the next
four (their median) are what a person continuing the conversation waits. Prints the prompt
size and the times.
"""

from __future__ import annotations

import argparse
import statistics
import time

from webapp.config import Config
from webapp.providers.local import LocalModel
from webapp.streaming import align_history

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
NEXT = ["And which one did we talk about last?", "Which was the most useful?",
        "Which one would a child like?", "Thank you. Which one is the oldest?"]
TOPICS = ["lighthouses", "bread", "bicycles", "the moon", "volcanoes", "tea", "chess", "owls",
          "rivers", "glass", "maps", "bees", "clocks", "salt", "kites", "paper", "snow"]


def conversation(turns: int) -> list[dict[str, str]]:
    """``turns`` exchanges: a question of about 15 words, an answer of about 40."""
    messages = []
    for i in range(turns):
        topic = TOPICS[i % len(TOPICS)]
        messages.append({"role": "user", "content": f"Question {i}: what is the most "
                         f"interesting thing about {topic}, and why do people like it?"})
        messages.append({"role": "assistant", "content": f"Answer {i}: {topic} are "
                         "interesting because they have a long history, they are useful "
                         "in daily life, and they appear in many stories. People like them "
                         "for their beauty, for what they teach us about the world, and "
                         "for the memories they bring back."})
    return messages


def bounded(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    """The app's history bounds (as ``history_for``): the newest messages until either bound
    is reached; and how many were left out."""
    most, budget = Config.MAX_HISTORY_MESSAGES, Config.MAX_HISTORY_CHARS
    kept: list[dict[str, str]] = []
    for message in reversed(messages):
        if len(kept) == most or (kept and len(message["content"]) > budget):
            break
        budget -= len(message["content"])
        kept.append(message)
    return [SYSTEM, *reversed(kept)], len(messages) - len(kept)


def sent(messages: list[dict[str, str]], fit: bool, max_tokens: int) -> list[dict[str, str]]:
    """What the model is sent: the bounds only (before), or as ``Generation`` does now: the
    bounds, the model's window, then cut by steps (after)."""
    history, skipped = bounded(messages)
    if not fit:
        return history
    history, dropped = LocalModel.fit_history(history, {"max_tokens": max_tokens})
    return align_history(history, skipped + dropped)[0]


def first_token(messages: list[dict[str, str]], max_tokens: int) -> tuple[float, str]:
    """Seconds to the first token, and the whole (short) answer; 'error: …' if it failed."""
    started = time.perf_counter()
    first = None
    text = []
    try:
        for token in LocalModel.create_completion(LocalModel.default_model(), messages, True,
                                                  temperature=0, max_tokens=max_tokens):
            first = first or time.perf_counter() - started
            text.append(token)
            if len(text) >= 24:  # enough to go on with: the time that matters is the first
                break
    except Exception as exc:  # noqa: BLE001 - a bench reports what happened
        return float("nan"), f"error: {exc}"
    return first if first is not None else float("nan"), "".join(text)


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    llama = LocalModel.load().llama
    return sum(len(llama.tokenize(m["content"].encode(), add_bos=False)) + 5 for m in messages)


def run(turns: int, fit: bool) -> tuple[float, float, int]:
    # Cold: another conversation was read last.
    first_token([{"role": "user", "content": "Say hello."}], 4)
    history = conversation(turns)
    history.append({"role": "user", "content": "Which of these did we talk about first?"})
    max_tokens = 1024 if fit else 512
    prompt = sent(history, fit, max_tokens)
    size = prompt_tokens(prompt)
    cold, answer = first_token(prompt, max_tokens)
    if answer.startswith("error"):
        print(f"  {answer}")
        return cold, float("nan"), size
    # The person goes on: the answer and one more question, four times.
    warms = []
    for question in NEXT:
        history += [{"role": "assistant", "content": answer},
                    {"role": "user", "content": question}]
        warm, answer = first_token(sent(history, fit, max_tokens), max_tokens)
        warms.append(warm)
    return cold, statistics.median(warms), size


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    LocalModel.load()
    result: dict[str, float] = {}
    for label, fit in (("before", False), ("after", True)):
        colds, warms = [], []
        for _ in range(args.runs):
            cold, warm, size = run(args.turns, fit)
            colds.append(cold)
            warms.append(warm)
            print(f"{label}: prompt {size} tokens, first token {cold:.2f} s, "
                  f"next turns {warm:.2f} s (median)", flush=True)
        result[f"{label}_first_s"] = statistics.median(colds)
        result[f"{label}_next_s"] = statistics.median(warms)
    print(f"median first token: before {result['before_first_s']:.2f} s, after "
          f"{result['after_first_s']:.2f} s; the next turns: before "
          f"{result['before_next_s']:.2f} s, after {result['after_next_s']:.2f} s")
    return result


if __name__ == "__main__":
    main()
