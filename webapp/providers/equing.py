"""The Equing provider: the seed's client for ``next.eqing.tech``, done right.

The service was a NextChat deployment speaking OpenAI's chat-completions protocol at
``{url}api/openai/v1/chat/completions`` with no API key. The protocol itself lives in
``openai_compat``; this class adds the service's address, the browser-like headers the original
client sent, NextChat's default sampling parameters and the seed's model flags.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import CreateResult
from .openai_compat import OpenAICompatible

#: The desktop Chrome identity the original client presented.
_CHROME = "116"
_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/{_CHROME}.0.0.0 Safari/537.36"
)


class Equing(OpenAICompatible):
    """Chat completions from ``next.eqing.tech`` (or whatever ``url`` points at).

    The service is gone, so ``working`` starts False; the registry's probe sets it when the
    configured URL answers. Point it elsewhere with a subclass (``url = ...``), with
    ``Equing.configured(url=...)``, or in the app with ``FLASK_EQUING_URL``.
    """

    name = "equing"
    label = "Equing (next.eqing.tech)"
    url = "https://next.eqing.tech/"
    working = False
    supports_stream = True
    supports_gpt_35_turbo = True
    supports_gpt_4 = False
    models: ClassVar[tuple[str, ...]] = ("gpt-3.5-turbo",)
    endpoint_path: ClassVar[str] = "api/openai/v1/chat/completions"

    @classmethod
    def endpoint(cls) -> str:
        """``{url}api/openai/v1/chat/completions``, whether or not ``url`` ends in a slash."""
        return cls.url.rstrip("/") + "/" + cls.endpoint_path

    @classmethod
    def build_headers(cls, stream: bool) -> dict[str, str]:
        """The original client's headers, with origin and referer derived from ``url``."""
        origin = cls.url.rstrip("/")
        headers = super().build_headers(stream)
        headers.update({
            "accept": "text/event-stream",
            "accept-language": "en,fr-FR;q=0.9,fr;q=0.8,es-ES;q=0.7,es;q=0.6,en-US;q=0.5",
            "cache-control": "no-cache",
            "pragma": "no-cache",
            "origin": origin,
            "referer": origin + "/",
            "plugins": "0",
            "usesearch": "false",
            "x-requested-with": "XMLHttpRequest",
            "user-agent": _USER_AGENT,
            "sec-ch-ua": f'"Chromium";v="{_CHROME}", "Not)A;Brand";v="24", '
                         f'"Google Chrome";v="{_CHROME}"',
            "sec-ch-ua-mobile": "?0",
            "sec-ch-ua-platform": '"Windows"',
            "sec-fetch-dest": "empty",
            "sec-fetch-mode": "cors",
            "sec-fetch-site": "same-origin",
        })
        # requests would merge these case-insensitively, but keep one spelling of each.
        headers.pop("Accept", None)
        return headers

    @classmethod
    def create_completion(cls, model: str, messages: list[dict[str, str]], stream: bool,
                          **kwargs: Any) -> CreateResult:
        """The seed's call: ``Equing.create_completion(model, messages, stream, **kwargs)``.

        Sends NextChat's defaults (temperature 0.5, penalties 0, top_p 1) for any parameter
        not given. ``gpt-4`` raises ``ModelNotSupported`` at once, before any network call.
        """
        return super().create_completion(model, messages, stream, **kwargs)
