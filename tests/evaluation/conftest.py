"""A real loopback HTTP server speaking the OpenAI chat-completions API, scripted per test."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class OpenAIStub:
    """`reply(request_json, call_number) -> (status, content)`; every request is recorded."""

    def __init__(self, reply: Callable[[dict, int], tuple[int, str]]) -> None:
        self.reply = reply
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append(body)
                    stub.headers.append(dict(self.headers))
                    number = len(stub.requests)
                status, content = stub.reply(body, number)
                payload = ({"id": f"c{number}", "object": "chat.completion", "created": 0, "model": body["model"],
                            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                           if status == 200 else {"error": {"message": content, "type": "server_error"}})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def openai_stub() -> Iterator[Callable[..., OpenAIStub]]:
    servers = []

    def start(reply: Callable[[dict, int], tuple[int, str]]) -> OpenAIStub:
        servers.append(OpenAIStub(reply))
        return servers[-1]

    yield start
    for stub in servers:
        stub.server.shutdown()
