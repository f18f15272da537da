"""Tokens per second of the embedded model: our LocalModel provider vs llama.cpp called directly.

    .venv/bin/python -m bench.local_tokens [--runs 3] [--tokens 200]

Both sides load the same GGUF with the same context size and threads, run the same prompt
with greedy decoding (temperature 0, so both produce the same tokens), and stream. We count
the provider's chunks (llama.cpp's streaming yields one chunk per token) and time from the
call to the last token. Prints the median of the runs and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from webapp.providers.local import LocalModel

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def direct(llama, tokens: int) -> tuple[int, float]:
    """llama.cpp's own streaming chat completion."""
    started = time.perf_counter()
    count = 0
    for chunk in llama.create_chat_completion(messages=PROMPT, stream=True, temperature=0,
                                              max_tokens=tokens):
        if chunk["choices"][0]["delta"].get("content"):
            count += 1
    return count, time.perf_counter() - started


def provider(tokens: int) -> tuple[int, float]:
    """The same through ``LocalModel.create_completion``."""
    started = time.perf_counter()
    count = sum(1 for _ in LocalModel.create_completion(
        LocalModel.default_model(), PROMPT, True, temperature=0, max_tokens=tokens))
    return count, time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args(argv)
    llama = LocalModel.load().llama  # the very same model object: only the layer differs
    direct(llama, 8)  # warm-up
    ours, theirs = [], []
    for _ in range(args.runs):
        n, s = direct(llama, args.tokens)
        theirs.append(n / s)
        n, s = provider(args.tokens)
        ours.append(n / s)
    result = {"llama_cpp_tok_s": statistics.median(theirs),
              "provider_tok_s": statistics.median(ours)}
    result["ratio"] = result["provider_tok_s"] / result["llama_cpp_tok_s"]
    print(f"cores={os.cpu_count()} runs={args.runs} tokens={args.tokens}")
    print(f"llama.cpp direct : {result['llama_cpp_tok_s']:8.1f} tokens/s "
          f"(runs: {', '.join(f'{x:.1f}' for x in theirs)})")
    print(f"LocalModel       : {result['provider_tok_s']:8.1f} tokens/s "
          f"(runs: {', '.join(f'{x:.1f}' for x in ours)})")
    print(f"ratio            : {result['ratio']:.3f}")
    return result


if __name__ == "__main__":
    main()
