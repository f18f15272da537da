"""Benchmarks run in a tiny smoke mode so they never rot (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import local_tokens

pytestmark = pytest.mark.slow


def test_local_tokens_bench_runs():
    result = local_tokens.main(["--runs", "1", "--tokens", "8"])
    assert set(result) == {"llama_cpp_tok_s", "provider_tok_s", "ratio"}
    assert result["provider_tok_s"] > 0 and result["llama_cpp_tok_s"] > 0
