"""Benchmarks run in a tiny smoke mode so they never rot (no timing is asserted)."""

from __future__ import annotations

import math

import pytest

from bench import (
    api_profile,
    browser_first_token,
    browser_stream,
    load,
    local_app,
    local_tokens,
    long_conversation,
    pages,
)


@pytest.mark.slow
def test_local_tokens_bench_runs():
    result = local_tokens.main(["--runs", "1", "--tokens", "8"])
    assert set(result) == {"llama_cpp_tok_s", "provider_tok_s", "ratio"}
    assert result["provider_tok_s"] > 0 and result["llama_cpp_tok_s"] > 0


def test_pages_bench_runs():
    result = pages.main(["--messages", "20", "--conversations", "60", "--runs", "2"])
    assert len(result) == 3 and all(v > 0 for v in result.values())


def test_load_bench_runs():
    concurrent = load.main(["--streams", "3", "--tokens", "5", "--gap-ms", "5"])
    sequential = load.main(["--sequential", "2", "--tokens", "5", "--gap-ms", "5"])
    for result in concurrent + sequential:
        assert result["app"]["errors"] == 0 and result["direct"]["errors"] == 0
        assert not math.isnan(result["app"]["ttft_p50"])


def test_load_bench_runs_through_the_api():
    sequential = load.main(["--api", "--sequential", "2", "--tokens", "5", "--gap-ms", "5"])
    concurrent = load.main(["--api", "--streams", "3", "--tokens", "5", "--gap-ms", "0"])
    for result in sequential + concurrent:
        assert result["unit"] == "call"
        assert result["app"]["errors"] == 0 and result["direct"]["errors"] == 0
        # Every stamp came through the relay's JSON, once: as many tokens as sent directly.
        assert result["app"]["tokens"] == result["direct"]["tokens"] == 5 * result["app"]["turns"]
        assert result["app"]["cpu"]["app"] > 0


def test_api_profile_bench_runs():
    result = api_profile.main(["--calls", "2", "--tokens", "3", "--gap-ms", "0"])
    assert result["summary"]["errors"] == 0
    # Every call went through the timed server (the app's own stages may be renamed: those
    # missing are listed, not failed on).
    assert result["stages"]["0 whole call (gunicorn)"][0] == result["calls"] == 2


def test_load_bench_runs_with_readers_attaching_mid_answer():
    # Long enough an answer that the readers attach while it runs (after 5 of 30 tokens).
    (result,) = load.main(["--streams", "2", "--tokens", "30", "--gap-ms", "20", "--attach",
                           "--attach-after", "5"])
    assert result["app"]["errors"] == 0
    attached = result["attached"]
    assert set(attached) == {"same worker", "other worker"}
    for where in attached.values():
        assert where["readers"] == 2 and where["errors"] == 0 and where["missing"] == 0
        assert where["tokens"] > 0


@pytest.mark.browser
@pytest.mark.parametrize("first_turn", [True, False])
def test_browser_stream_bench_runs(first_turn):
    result = browser_stream.main(["--tokens", "10", "--gap-ms", "5"]
                                 + (["--first-turn"] if first_turn else []))
    assert result["seconds"] > 0 and result["long_tasks"] >= 0


@pytest.mark.browser
def test_browser_first_token_bench_runs():
    # A short answer: the path is what is checked, and a full one takes minutes on a loaded
    # 2-core machine.
    result = browser_first_token.main(["--runs", "1", "--max-tokens", "32"])
    assert result


@pytest.mark.slow
def test_local_app_bench_runs():
    result = local_app.main(["--runs", "1", "--tokens", "8"])
    assert result


def test_load_bench_runs_with_markdown_blocks():
    (result,) = load.main(["--sequential", "2", "--tokens", "45", "--gap-ms", "2", "--blocks"])
    assert result["app"]["errors"] == 0 and result["direct"]["errors"] == 0
    # A token sent again inside a finished block's HTML is not counted twice.
    assert result["app"]["tokens"] == result["direct"]["tokens"] > 0


@pytest.mark.slow
def test_long_conversation_bench_runs():
    result = long_conversation.main(["--turns", "3", "--runs", "1"])
    assert set(result) == {"before_first_s", "before_next_s", "after_first_s", "after_next_s"}
