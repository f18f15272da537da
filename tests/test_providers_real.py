"""Providers against real peers: llama_cpp.server and the embedded model in-process."""

from __future__ import annotations

import contextlib
import io

import pytest

from tests.helpers import run_to_end
from webapp.config import Config
from webapp.providers import Cancellation, Equing, LocalModel, OpenAICompatible, ProviderError
from webapp.providers import equing as equing_module

pytestmark = pytest.mark.peer

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def text_to_end(generator):
    """All the text of a provider's generator, and what it returned (its finish reason)."""
    tokens, reason = run_to_end(generator)
    return "".join(tokens), reason


@pytest.fixture()
def generic(llama_server):
    return OpenAICompatible.configured(url=llama_server + "/v1/")


@pytest.fixture()
def equing(llama_server):
    return Equing.configured(url=llama_server + "/")


@pytest.mark.parametrize("which", ["generic", "equing"])
def test_stream_and_non_stream_answers(request, which):
    provider = request.getfixturevalue(which)
    model = provider.default_model() or "SmolLM2-135M-Instruct"
    tokens = list(provider.create_completion(model, QUESTION, True, max_tokens=24, temperature=0))
    assert len(tokens) > 1 and "".join(tokens).strip()
    whole = list(provider.create_completion(model, QUESTION, False, max_tokens=24, temperature=0))
    assert len(whole) == 1 and whole[0].strip()
    # Greedy decoding is deterministic: streamed and whole answers are the same text.
    assert whole[0] == "".join(tokens)


def test_temperature_zero_gives_the_same_answer_twice(equing):
    prompt = [{"role": "user", "content": "Write a sentence about the sea."}]
    first = "".join(equing.create_completion("gpt-3.5-turbo", prompt, True, temperature=0,
                                             max_tokens=30))
    second = "".join(equing.create_completion("gpt-3.5-turbo", prompt, True, temperature=0,
                                              max_tokens=30))
    assert first == second and first.strip()


def test_max_tokens_is_honoured(generic):
    prompt = [{"role": "user", "content": "Count from one to one hundred in words."}]
    short = list(generic.create_completion("any", prompt, True, temperature=0, max_tokens=3))
    longer = list(generic.create_completion("any", prompt, True, temperature=0, max_tokens=40))
    assert 1 <= len(short) <= 3 < len(longer)


@pytest.mark.parametrize("stream", [True, False])
def test_a_server_stops_before_a_stop_sequence(generic, stream):
    whole = "".join(generic.create_completion("any", QUESTION, stream, temperature=0,
                                              max_tokens=16))
    assert "Paris" in whole
    cut = "".join(generic.create_completion("any", QUESTION, stream, temperature=0,
                                            max_tokens=16, stop=["Paris", "Lyon"]))
    assert cut == whole[:whole.index("Paris")]


def test_abandoning_the_stream_lets_the_server_serve_again(equing):
    generator = equing.create_completion("gpt-3.5-turbo", QUESTION, True, max_tokens=200)
    next(generator)
    generator.close()
    assert "".join(equing.create_completion("gpt-3.5-turbo", QUESTION, False, max_tokens=8))


def test_seed_examples_run_as_written(llama_server, monkeypatch):
    """The two examples of Equing.md, verbatim but for the service's address."""
    monkeypatch.setattr(equing_module.Equing, "url", llama_server + "/")
    Equing = equing_module.Equing  # noqa: N806 - the seed's spelling
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model = "gpt-3.5-turbo"
        messages = [{"role": "user", "content": "Hello, how are you?"}]
        stream = False
        result = Equing.create_completion(model=model, messages=messages, stream=stream)
        for r in result:
            print(r)

        model = "gpt-3.5-turbo"
        messages = [{"role": "user", "content": "Tell me a joke."}]
        stream = True
        result = Equing.create_completion(model=model, messages=messages, stream=stream,
                                          temperature=0.7)
        for r in result:
            print(r, end="")
    assert len(out.getvalue().strip()) > 10


# -- the embedded model ------------------------------------------------------------------

def test_local_model_answers_a_real_prompt():
    model = LocalModel.default_model()
    tokens = list(LocalModel.create_completion(model, QUESTION, True, temperature=0,
                                               max_tokens=16))
    assert len(tokens) > 1
    assert "paris" in "".join(tokens).lower()
    whole = list(LocalModel.create_completion(model, QUESTION, False, temperature=0,
                                              max_tokens=16))
    assert whole == ["".join(tokens)]


def test_local_model_continues_an_unfinished_answer():
    """Continue: the last message is the answer so far, and the model writes on from its
    last word instead of starting a new answer."""
    messages = [{"role": "user", "content": "Count from one to ten in words."},
                {"role": "assistant", "content": "One, two, three, four,"}]
    text = "".join(LocalModel.create_completion(LocalModel.default_model(), messages, True,
                                                temperature=0, max_tokens=12))
    assert text.lower().lstrip().startswith("five"), text
    assert "<|im" not in text


@pytest.mark.parametrize("stream, stop", [(True, ["Paris", "Lyon"]), (False, "Paris")])
def test_local_model_stops_before_a_stop_sequence(stream, stop):
    model = LocalModel.default_model()
    whole = "".join(LocalModel.create_completion(model, QUESTION, stream, temperature=0,
                                                 max_tokens=16))
    assert "Paris" in whole
    cut, reason = text_to_end(LocalModel.create_completion(model, QUESTION, stream,
                                                          temperature=0, max_tokens=16,
                                                          stop=stop))
    assert cut == whole[:whole.index("Paris")] and cut.strip()
    assert reason == "stop"


def test_local_model_continuation_stops_before_a_stop_sequence():
    """Continue has stop sequences of its own (the template's end of turn): the caller's
    are added to them."""
    messages = [{"role": "user", "content": "Count from one to ten in words."},
                {"role": "assistant", "content": "One, two, three, four,"}]
    model = LocalModel.default_model()
    whole = "".join(LocalModel.create_completion(model, messages, True, temperature=0,
                                                 max_tokens=12))
    assert "six" in whole
    cut, reason = text_to_end(LocalModel.create_completion(model, messages, True, temperature=0,
                                                          max_tokens=12, stop=["six"]))
    assert cut == whole[:whole.index("six")] and "five" in cut
    assert reason == "stop"


def test_local_model_parameters_pass_through():
    model = LocalModel.default_model()
    prompt = [{"role": "user", "content": "Write a sentence about the sea."}]
    kwargs = dict(temperature=0, max_tokens=20, top_p=0.9, presence_penalty=0.5,
                  frequency_penalty=0.5)
    first = "".join(LocalModel.create_completion(model, prompt, True, **kwargs))
    assert first == "".join(LocalModel.create_completion(model, prompt, True, **kwargs))
    assert len(list(LocalModel.create_completion(model, prompt, True, temperature=0,
                                                 max_tokens=2))) <= 2


def test_local_model_cancel_and_close_release_the_lock():
    model = LocalModel.default_model()
    cancel = Cancellation()
    received = []
    for token in LocalModel.create_completion(model, QUESTION, True, max_tokens=200,
                                              cancel=cancel):
        received.append(token)
        cancel.cancel()
    assert len(received) == 1
    generator = LocalModel.create_completion(model, QUESTION, True, max_tokens=200)
    next(generator)
    generator.close()
    assert LocalModel.load().lock.acquire(timeout=5)
    LocalModel.load().lock.release()


def test_local_model_rejects_what_it_cannot_do():
    with pytest.raises(ProviderError):
        LocalModel.create_completion("gpt-4", QUESTION, True)
    for bad in ([""], ["a"] * 5, ["x" * 201], 7):
        with pytest.raises(ProviderError, match="stop") as info:
            LocalModel.create_completion(LocalModel.default_model(), QUESTION, True, stop=bad)
        assert info.value.provider == "local"
    too_long = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(ProviderError):
        list(LocalModel.create_completion(LocalModel.default_model(), too_long, True))


def test_local_model_says_when_it_stopped_at_the_limit():
    model = LocalModel.default_model()
    prompt = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    for stream in (True, False):
        generator = LocalModel.create_completion(model, prompt, stream, temperature=0,
                                                 max_tokens=3)
        try:
            while True:
                next(generator)
        except StopIteration as end:
            assert end.value == "length"
    short = LocalModel.create_completion(model, [{"role": "user", "content": "Say yes."}],
                                         True, temperature=0, max_tokens=200)
    try:
        while True:
            next(short)
    except StopIteration as end:
        assert end.value == "stop"


def test_local_model_default_limit_leaves_room_for_ordinary_answers():
    # 512 tokens cut many ordinary answers (recipes, short stories) mid-sentence.
    assert LocalModel.default_max_tokens == 1024 and Config.LOCAL_MAX_TOKENS == 1024


def test_local_model_fits_a_long_conversation_in_its_window():
    system = {"role": "system", "content": "Answer briefly."}
    turns = [{"role": ("user", "assistant")[i % 2],
              "content": f"Turn {i}: " + "tell me more about the lighthouse keeper " * 6}
             for i in range(51)]  # ending with the person's turn (a last answer is continued)
    local = LocalModel.configured(n_ctx=2048)
    kept, dropped = local.fit_history([system, *turns], {"max_tokens": 256})
    assert kept[0] == system and kept[-1] == turns[-1] and dropped > 0
    assert kept[1:] == turns[dropped:]  # the oldest went first
    llama = LocalModel.load().llama
    prompt = sum(len(llama.tokenize(m["content"].encode(), add_bos=False)) + 8 for m in kept)
    assert prompt <= 2048 - 256
    # ... and the model answers it (before, the whole conversation was over the window).
    answer = "".join(LocalModel.create_completion(local.default_model(), kept, True,
                                                  temperature=0, max_tokens=4))
    assert answer
    with pytest.raises(ProviderError):
        list(LocalModel.create_completion(local.default_model(), [system, *turns], True,
                                          max_tokens=4))
