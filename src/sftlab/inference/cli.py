"""`sftlab generate` and `sftlab chat`."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import torch
from jsonargparse import ArgumentParser
from tqdm import tqdm

from sftlab.artifacts import jsonl, write_jsonl_atomic
from sftlab.errors import SftlabError
from sftlab.inference.generate import Generator, Sampling
from sftlab.inference.loading import LoadedModel


def add_loading_arguments(parser: ArgumentParser) -> None:
    """Which model to load and where: --model, --base, --template, --dtype, --device."""
    parser.add_argument(
        "--model",
        type=str,
        required=True,
        help="An HF-format folder, a LoRA adapter folder, a sftlab .ckpt checkpoint, a .gguf file, or a Hugging Face Hub id (org/name).",
    )
    parser.add_argument("--revision", type=str | None, default=None, help="The Hub revision of a --model given by id (default: main).")
    parser.add_argument(
        "--base", type=str | None, default=None, help="The base model of a LoRA adapter, a path or Hub id (default: the one it names)."
    )
    parser.add_argument(
        "--template", type=str | None, default=None, help="alpaca | chat | a .jinja file (default: the one used in training)."
    )
    parser.add_argument("--dtype", type=str, default="float32", help="float32, bfloat16 or float16.")
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:1 ...")


def add_model_arguments(parser: ArgumentParser) -> None:
    """The model (`add_loading_arguments`) and how it generates: --system, --seed, the sampling settings."""
    add_loading_arguments(parser)
    parser.add_argument("--system", type=str | None, default=None, help="A system prompt for every conversation.")
    parser.add_argument("--seed", type=int, default=0, help="Seed for sampling.")
    parser.add_class_arguments(Sampling, nested_key=None)


def sampling_from(config) -> Sampling:
    """The decoding settings parsed by `add_model_arguments`."""
    return Sampling(config.max_new_tokens, config.temperature, config.top_p, config.top_k, config.repetition_penalty)


def load_model(config) -> LoadedModel:
    """The model named by `add_loading_arguments` (--model, --base, --template, --dtype), on --device."""
    from sftlab.inference.loading import load_for_inference

    loaded = load_for_inference(config.model, config.base, config.template, config.dtype, config.revision)
    loaded.model.to(config.device)
    return loaded


def load_generator(config, batch_size: int = 1) -> Generator:
    loaded = load_model(config)
    torch.manual_seed(config.seed)
    return Generator(loaded, sampling_from(config), batch_size)


def generate_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sftlab generate", description="Batched generation; one JSON line per prompt.")
    add_model_arguments(parser)
    parser.add_argument("--prompt", type=str, nargs="+", default=None, help="One or more prompt texts.")
    parser.add_argument(
        "--prompts",
        type=str | None,
        default=None,
        help="A prompts file: .txt (one per line) or .jsonl/.json records with a 'prompt' field.",
    )
    parser.add_argument(
        "--data",
        type=str | None,
        default=None,
        help="A dataset (alpaca/sharegpt/messages; file, folder or glob): each conversation up to its last answer.",
    )
    parser.add_argument("--limit", type=int | None, default=None, help="Use only the first N prompts.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output", type=str | None, default=None, help="JSONL file to write (default: stdout).")
    return parser


def generate_command(argv: list[str]) -> None:
    from sftlab.inference.prompts import read_dataset_prompts, read_prompts_file, user_prompt

    config = generate_parser().parse_args(argv)
    if sum(bool(x) for x in (config.prompt, config.prompts, config.data)) != 1:
        raise SftlabError("generate: give exactly one of --prompt, --prompts FILE, --data FILE")
    if config.prompt:
        items = [user_prompt(text, config.system, f"--prompt {i}") for i, text in enumerate(config.prompt)]
    elif config.prompts:
        items = read_prompts_file(Path(config.prompts), config.system)
    else:
        items = read_dataset_prompts(config.data)
    items = items[: config.limit] if config.limit else items
    generator = load_generator(config, config.batch_size)
    with tqdm(total=len(items), desc="generating", unit="prompt", file=sys.stderr) as bar:
        answers = generator.answer([item.conversation for item in items], progress=bar.update)
    rows = []
    for item, answer in zip(items, answers):
        row = {"source": item.conversation.source, "prompt": item.conversation.messages[-1].content, **asdict(answer)}
        if item.reference is not None:
            row["reference"] = item.reference
        rows.append(row)
    if config.output:
        print(write_jsonl_atomic(Path(config.output), rows), file=sys.stderr)
    else:
        sys.stdout.write(jsonl(rows))


CHAT_HELP = "commands: /reset clears the conversation, /system TEXT sets the system prompt, /history shows it, /exit quits"


def chat_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sftlab chat", description="Talk to a model in the terminal, tokens streamed as they come.")
    add_model_arguments(parser)
    return parser


def chat_command(argv: list[str]) -> None:
    from transformers import TextStreamer

    from sftlab.data.formats.records import Conversation, Message

    config = chat_parser().parse_args(argv)
    generator = load_generator(config)
    streamer = TextStreamer(generator.loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    system, history = config.system, []
    print(f"sftlab chat with {config.model}\n{CHAT_HELP}", flush=True)
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if not text:
            continue
        command, _, rest = text.partition(" ")
        if command == "/exit":
            return
        if command == "/reset":
            history.clear()
            print("(conversation cleared)", flush=True)
        elif command == "/system":
            system = rest.strip() or None
            print(f"(system prompt {'set' if system else 'cleared'})", flush=True)
        elif command == "/history":
            print(f"({len(history)} messages)", flush=True)
            for message in history:
                print(f"{message.role}: {message.content}", flush=True)
        elif command.startswith("/"):
            print(f"(unknown command {command}; {CHAT_HELP})", flush=True)
        else:
            history.append(Message("user", text))
            conversation = Conversation(((Message("system", system),) if system else ()) + tuple(history), "chat")
            print("assistant> ", end="", flush=True)
            answer = generator.stream(conversation, streamer)
            history.append(Message("assistant", answer.answer))
