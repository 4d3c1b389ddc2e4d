"""The Gradio layout and event handlers of `sftlab ui` (imported only when the `ui` extra is there)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import gradio as gr

from sftlab.inference.generate import Answer, Sampling
from sftlab.ui.app import ChatModel, prompt_format, stream_answer

History = list[dict[str, Any]]


def responder(model: ChatModel, base: ChatModel | None, defaults: Sampling):
    """The send handler: appends the message, streams the model's answer (then the base model's, side
    by side), and on a generation failure shows it in the page and puts the message back. The status
    line says `generating ...` while tokens come and, when done, each answer's tokens, time and
    finish reason."""

    def respond(
        text: str, history: History, base_history: History, system_prompt: str, temp: float, p: float, new_tokens: float, both: bool
    ) -> Iterator[tuple]:
        if not text.strip():
            yield text, history, base_history, "", gr.skip()
            return
        sampling = replace(defaults, temperature=float(temp), top_p=float(p), max_new_tokens=int(new_tokens))
        before = (list(history), list(base_history))
        turns = {
            "chat": [*history, {"role": "user", "content": text}],
            "base": [*base_history, {"role": "user", "content": text}] if both and base else list(base_history),
        }
        shown_prompt: Any = gr.skip()
        done: list[str] = []
        targets = [(key, target) for key, target in (("chat", model), ("base", base if both else None)) if target is not None]
        for key, target in targets:
            asked = turns[key]
            working = " · ".join([*done, f"*{target.name}: generating ...*"])
            yield "", turns["chat"], turns["base"], working, shown_prompt
            try:
                for item in stream_answer(target, asked, system_prompt, sampling):
                    answer = item.answer if isinstance(item, Answer) else item
                    turns[key] = [*asked, {"role": "assistant", "content": answer}]
                    if isinstance(item, Answer):
                        done.append(f"{target.name}: {item.answer_tokens} tokens in {item.seconds:.1f} s ({item.finish_reason})")
                        shown_prompt = item.rendered_prompt if key == "chat" else shown_prompt
                        working = " · ".join(done)
                    yield "", turns["chat"], turns["base"], working, shown_prompt
            except Exception as err:  # shown in the page; the message goes back into the box
                failure = f"**Generation failed** ({target.name}): {type(err).__name__}: {err}"
                yield text, before[0], before[1], failure, shown_prompt
                return

    return respond


def build_page(model: ChatModel, base: ChatModel | None, defaults: Sampling, system: str = "") -> gr.Blocks:
    with gr.Blocks(title=f"sftlab: {model.name}") as page:
        gr.Markdown(
            f"## sftlab chat\n**Model:** `{model.name}` (prompt format `{model.loaded.template}`)"
            + (f"  \n**Base model for comparison:** `{base.name}`" if base else "")
        )
        with gr.Row():
            chat = gr.Chatbot(label=model.name, elem_id="chat", height=420)
            base_chat = gr.Chatbot(label=f"base: {base.name}" if base else "base", elem_id="base-chat", height=420, visible=False)
        status = gr.Markdown("", elem_id="status")
        with gr.Row():
            message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, elem_id="message", scale=8)
            send = gr.Button("Send", variant="primary", elem_id="send", scale=1)
            clear = gr.Button("Clear", elem_id="clear", scale=1)
        with gr.Accordion("Settings", open=True):
            with gr.Row():
                system_box = gr.Textbox(system, label="System prompt", elem_id="system", scale=3)
                side = gr.Checkbox(
                    False,
                    label="Side by side with the base model",
                    elem_id="side-by-side",
                    visible=base is not None,
                    interactive=base is not None,
                )
            with gr.Row():
                temperature = gr.Slider(
                    0, 2, value=defaults.temperature, step=0.05, label="Temperature (0 = greedy)", elem_id="temperature"
                )
                top_p = gr.Slider(0.05, 1, value=defaults.top_p, step=0.05, label="top_p", elem_id="top-p")
                max_new_tokens = gr.Slider(1, 4096, value=defaults.max_new_tokens, step=1, label="Max new tokens", elem_id="max-new-tokens")
        with gr.Accordion("Prompt format: what the model reads (the last prompt, after each answer)", open=True):
            prompt = gr.Code(prompt_format(model), label="prompt", elem_id="prompt", language=None)

        respond = responder(model, base, defaults)
        inputs = [message, chat, base_chat, system_box, temperature, top_p, max_new_tokens, side]
        outputs = [message, chat, base_chat, status, prompt]
        message.submit(respond, inputs, outputs)
        send.click(respond, inputs, outputs)
        clear.click(lambda: ([], [], ""), None, [chat, base_chat, status])
        side.change(lambda both: gr.update(visible=both), side, base_chat)
    return page
