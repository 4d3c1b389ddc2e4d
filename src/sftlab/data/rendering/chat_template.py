"""Any Hugging Face chat template, with the character spans of every part of every assistant message.

How parts are found without per-template code (see shared/design/MASKING.md): render the conversation
once; then, per assistant message, render it again with one part replaced by a marker character that
occurs nowhere else (the content by one marker, the reasoning by another, each tool call's name by its
own). The real render and a marker render agree before and after the replaced part, so their common
prefix and suffix bound exactly what the template wrote for it, wherever it sits and however the template
rewrites other turns; a marker that does not come back means the template does not render that part.
Tool calls are traced by substituting the real names back (which must give the real render again) and
run to the text the template closes a call with. Nothing else is moved or removed, so text the template
writes for *other* messages inside a model turn stays theirs: where a part of a message follows its calls
(Gemma-4 writes the tool results, then the answer), the results are found the same way, each rendered as a
marker, and no part takes them.

What the model must write is trained: the message from the end of its header (what the generation prompt
writes) through the stop that ends it (`<|im_end|>`, `<|eot_id|>`, ...; turn_ends.py says how it is found);
the text between the parts is assigned as spans.py says. Messages reach the template as the record gives
them (chat_messages.py), in the forms the template reads (template_inputs.py).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from functools import cached_property
from typing import Any

from transformers import PreTrainedTokenizerBase

from sftlab.data.formats.records import Conversation, Message, ThinkBlock
from sftlab.data.rendering.chat_messages import chat_message, data_text, inline_reasoning, with_data_text
from sftlab.data.rendering.spans import Part, Rendered, Span, Turn, assemble_parts, changed_span, first_part_start, substituted, turn_kind
from sftlab.data.rendering.template_inputs import InputForms, probe_forms
from sftlab.data.rendering.template_probes import ANSWER, CALL, QUESTION, REASONING, TemplateShape, probe_shape
from sftlab.data.rendering.turn_ends import EOS, TurnEnds, closer_stop, probe_turn_ends, turn_end
from sftlab.errors import DataError, TemplateError

log = logging.getLogger(__name__)

LITERAL = 0xE080  # the k-th distinct special-token text found in the data is hidden as chr(LITERAL + k)
RESERVED = re.compile("[\ue000-\ue0ff]")  # marker characters: private use, never in real text


class ChatTemplate:
    """Any Hugging Face chat template (the tokenizer's own or a `.jinja` file's text).

    `fold_system_prompt`: None folds the system prompt into the first user turn only where the
    template has no system role (Gemma, Mistral); True always folds; False never does (and a
    template without a system role then gives a clear error)."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, template: str | None = None, fold_system_prompt: bool | None = None, name: str = ""
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template or tokenizer.chat_template
        if not self.template:
            raise TemplateError(
                f"tokenizer {tokenizer.name_or_path!r} has no chat template: set data.template to a .jinja file or 'alpaca'"
            )
        self.name = name or "the tokenizer's chat template"
        self._fold_setting = fold_system_prompt
        self._said: set[str] = set()

    def _render(self, messages: list[dict[str, Any]], tools: list | None, source: str, prompt: bool = False, **overrides: str) -> str:
        """`apply_chat_template` on messages as given; `overrides` replace template variables (`eos_token`)."""
        try:
            return self.tokenizer.apply_chat_template(
                messages, tools=tools or None, chat_template=self.template, tokenize=False, add_generation_prompt=prompt, **overrides
            )
        except Exception as err:  # jinja2 errors and the template's own raise_exception
            hint = ""
            if "_token' is undefined" in str(err):
                hint = (
                    f" (tokenizer {self.tokenizer.name_or_path!r} lacks a special token this template prints: template/tokenizer mismatch)"
                )
            raise TemplateError(f"{source}: {self.name} failed to render: {type(err).__name__}: {err}{hint}") from None

    def _apply(self, messages: list[dict[str, Any]], tools: list | None, source: str, prompt: bool = False, **overrides: str) -> str:
        return self._render(self.forms.sent(messages), tools, source, prompt, **overrides)

    @cached_property
    def forms(self) -> InputForms:
        return probe_forms(lambda messages: self._render(messages, None, "probe"), ANSWER, QUESTION)

    @cached_property
    def shape(self) -> TemplateShape:
        return probe_shape(lambda messages, prompt: self._apply(messages, None, "probe", prompt))

    @cached_property
    def turn_ends(self) -> TurnEnds:
        ends = probe_turn_ends(lambda messages: self._apply(messages, None, "probe", eos_token=EOS), self.tokenizer.eos_token or "")
        if ends.by_role_tags:
            log.warning(
                "%s writes nothing after an assistant turn: the model stops by writing the next message's role tag (%r, %r after "
                "tool calls). Each turn is trained with the tag that follows it, and that tag is added after the last turn, "
                "where the template writes none",
                self.name,
                ends.answer.stop_tag,
                ends.tool_calls.stop_tag,
            )
        elif ends.answer.last_marker:
            log.warning(
                "%s ends only the last answer with %r: earlier answers end with text that is not the model's stop, so no stop "
                "is trained after them (data.masking: expand makes every answer the last; `sftlab inspect` counts them)",
                self.name,
                ends.answer.last_marker,
            )
        elif not ends.answer.marker:
            log.warning("%s writes no end-of-turn marker after assistant messages: only their content is trained", self.name)
        return ends

    @cached_property
    def has_system_role(self) -> bool:
        probe = [{"role": "system", "content": "S" + ANSWER}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]
        try:
            return ANSWER in self._apply(probe, None, "probe")
        except TemplateError:
            return False

    @cached_property
    def fold_system_prompt(self) -> bool:
        if self._fold_setting is False and not self.has_system_role:
            raise TemplateError(
                f"{self.name} has no system role and data.fold_system_prompt is false: "
                "allow folding the system prompt into the first user turn, or drop system prompts"
            )
        return self._fold_setting if self._fold_setting is not None else not self.has_system_role

    def _folded(self, conversation: Conversation) -> tuple[list[Message], int]:
        """The messages as the template gets them, and how many were folded away at the front."""
        messages = list(conversation.messages)
        if messages[0].role == "system" and self.fold_system_prompt:
            system, first = messages[0], messages[1]
            return [dataclasses.replace(first, content=f"{system.content}\n\n{first.content}"), *messages[2:]], 1
        return messages, 0

    def _say_once(self, key: str, level: int, message: str, *args: Any) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, message, *args)

    def _chat(self, message: Message, **replaced: Any) -> dict:
        return chat_message(message, self.shape.reasoning_field, **replaced)

    def _chats(self, messages: list[Message], tools: list, source: str) -> tuple[list[dict], set[int]]:
        """The messages' dicts, and which messages' reasoning is dropped: reasoning from a field that a
        template without a reasoning field does not render once written as a `<think>` block (DeepSeek-R1
        cuts everything up to `</think>`) is left out, so the text is the template's own rendering of the record."""
        chats = [self._chat(message) for message in messages]
        injected = [i for i, m in enumerate(messages) if m.reasoning and self.shape.reasoning_field is None]
        dropped = set()
        for index in injected:
            marked = self._apply([*chats[:index], self._chat(messages[index], reasoning=REASONING), *chats[index + 1 :]], tools, source)
            if REASONING not in marked:
                dropped.add(index)
                chats[index] = self._chat(messages[index], drop=True)
        if injected:
            self._say_once(
                "injected",
                logging.INFO,
                "%s reads no reasoning field: reasoning given in 'reasoning_content'/'thinking' is written into the content "
                "as a <think> block, as DeepSeek-R1 and Qwen3 write it",
                self.name,
            )
        blocks = [m for m in messages if inline_reasoning(m) and self.shape.reasoning_field and not self.shape.reads_think_blocks]
        if blocks:
            self._say_once(
                "think-text",
                logging.WARNING,
                "%s reads reasoning from %r: a <think> block at the start of a content is passed on as the data gives it, "
                "which %s renders otherwise than reasoning in that field (Gemma-4 and gpt-oss as text of the answer): "
                "give the reasoning in the field to have it rendered as the model's reasoning",
                self.name,
                self.shape.reasoning_field,
                self.name,
            )
        return chats, dropped

    def render(self, conversation: Conversation) -> Rendered:
        messages, folded = self._folded(conversation)
        tools = list(conversation.tools)
        chats, dropped = self._chats(messages, tools, conversation.source)
        text = self._apply(chats, tools, conversation.source)
        if reserved := RESERVED.search(text):
            raise DataError(conversation.source, f"the text contains the reserved character U+{ord(reserved.group()):04X}")
        turns: list[Turn] = []
        added = ""
        for index, message in enumerate(messages):
            if message.role == "assistant":
                floor = turns[-1].span[1] if turns else 0
                turn, added = self._turn(text, messages, chats, index, tools, conversation.source, floor, folded, dropped)
                turns.append(turn)
        literal = self._literal_spans(messages, tools, text, conversation.source, dropped)
        return Rendered(text + added, tuple(turns), literal)

    def _turn(
        self,
        text: str,
        messages: list[Message],
        chats: list[dict],
        index: int,
        tools: list,
        source: str,
        floor: int,
        folded: int,
        dropped: set[int],
    ) -> tuple[Turn, str]:
        """The assistant message `index` as a turn, and the text added after it (a stop tag after the last turn)."""
        message, where = messages[index], f"field 'messages[{index + folded}]'"

        def variant(**replaced: Any) -> str:
            return self._apply([*chats[:index], self._chat(message, drop=index in dropped, **replaced), *chats[index + 1 :]], tools, source)

        cores: dict[Part, Span] = {}
        missing: list[Part] = []
        block = inline_reasoning(message)
        if (block.answer if block else message.chat_content()).strip():
            self._record(cores, missing, "answer", changed_span(text, variant(answer=ANSWER), ANSWER))
        if (message.reasoning or block) and index not in dropped:
            self._record(cores, missing, "reasoning", changed_span(text, variant(reasoning=REASONING), REASONING))
        elif message.reasoning:
            missing.append("reasoning")
        if message.tool_calls:
            names = [chr(ord(CALL) + j) for j in range(len(message.tool_calls))]
            self._record(cores, missing, "tool_calls", self._calls_core(text, variant(names=names), message, names))
        if not cores or "tool_calls" in missing:
            what = "the tool calls of this assistant message" if "tool_calls" in missing else "this assistant message"
            raise DataError(source, f"{where}: {self.name} did not render {what} (does the template support tool calls?)")
        if "reasoning" in missing:
            self._warn_missing_reasoning(where)
        results = self._result_cores(text, messages, chats, index, tools, source, cores)
        parts = self._parts(text, cores, results, floor, block)
        kind = turn_kind(parts)
        last = index == len(messages) - 1
        end_of_turn, added = turn_end(self.turn_ends, text, parts[-1][1][1], kind, last)
        stop = end_of_turn or closer_stop(self.turn_ends, text, parts[-1][1][1], kind)
        eot_part = (("end_of_turn", end_of_turn),) if end_of_turn else ()
        return Turn(index + folded, tuple(parts) + eot_part, tuple(missing), stop), added

    def _result_cores(
        self, text: str, messages: list[Message], chats: list[dict], index: int, tools: list, source: str, cores: dict[Part, Span]
    ) -> list[Span]:
        """Where the template writes the content of the tool messages that answer this message's calls
        (those right after it), each found by rendering it as a marker; only where a part of this message
        follows its calls, the one place such text can lie between two parts (Gemma-4's model turn goes
        on after the results)."""
        calls = cores.get("tool_calls")
        if calls is None or not any(start >= calls[1] for start, _ in cores.values()):
            return []
        spans = []
        for later in range(index + 1, len(messages)):
            if messages[later].role != "tool":
                break
            marked = [*chats[:later], self._chat(messages[later], answer=ANSWER), *chats[later + 1 :]]
            span = changed_span(text, self._apply(marked, tools, source), ANSWER)  # an empty result still marks its place
            spans += [span] if span is not None else []
        return spans

    def _parts(
        self, text: str, cores: dict[Part, Span], results: list[Span], floor: int, block: ThinkBlock | None
    ) -> list[tuple[Part, Span]]:
        """The parts from their cores, as spans.py says: a run of parts with no tool result between them is
        assembled as one message's parts, and each run begins as a message's first part does, after the
        previous message (`floor`) or after the results before it; text between two runs is no part. A
        `<think>` block of the content begins with the data's own opening where the template writes it as given."""
        runs: list[tuple[int, dict[Part, Span]]] = []
        previous_end = floor
        for name, core in sorted(cores.items(), key=lambda item: item[1]):
            after = max((end for start, end in results if previous_end <= start and end <= core[0]), default=None)
            if not runs or after is not None:
                runs.append((floor if after is None else after, {}))
            runs[-1][1][name] = core
            previous_end = core[1]
        parts: list[tuple[Part, Span]] = []
        for run_floor, run in runs:
            first = min(run, key=lambda part: run[part])
            openers = [self.shape.openers.get(first, "")]
            if first == "reasoning" and block is not None:
                openers.insert(0, self.shape.openers.get("answer", "") + block.opening)
            start = first_part_start(text, run[first][0], openers, self.shape.header, run_floor)
            parts += assemble_parts(text, run, start, self.shape.call_opener)
        return parts

    @staticmethod
    def _record(cores: dict[Part, Span], missing: list[Part], part: Part, span: Span | None) -> None:
        if span is not None and span[1] > span[0]:
            cores[part] = span
        else:
            missing.append(part)

    def _calls_core(self, text: str, variant: str, message: Message, names: list[str]) -> Span | None:
        """From the first call's name to the end of the text that closes the last call, in `text`; the
        names must come back in place of their markers (None when the template renders no call)."""
        restored, found = substituted(variant, {marker: call.name for marker, call in zip(names, message.tool_calls)})
        if restored != text or not found:
            return None
        first = next(position for marker, position in found if marker == names[0])
        last = next(position for marker, position in found if marker == names[-1]) + len(message.tool_calls[-1].name)
        closer = self.turn_ends.call_closer
        closed = text.find(closer, last) if closer else -1
        return first, closed + len(closer) if closed >= 0 else last

    def _warn_missing_reasoning(self, where: str) -> None:
        self._say_once(
            "missing-reasoning",
            logging.WARNING,
            "%s does not render the reasoning of some assistant messages (first: %s): that reasoning is not trained. "
            "Qwen3 drops the reasoning of turns before the last user turn (data.masking: expand trains each turn's), "
            "DeepSeek-R1 drops all of it; `sftlab inspect` counts them",
            self.name,
            where,
        )

    def prompt_text(self, conversation: Conversation) -> str:
        """The text before what the model writes: the answer slot is rendered as a final assistant
        message, so the prompt is byte for byte what preceded trained text in training, and it ends at
        the header (Qwen3: `<|im_start|>assistant\\n`; the model writes its `<think>` block itself)."""
        answer_slot = Conversation((*conversation.messages, Message("assistant", ANSWER)), conversation.source, conversation.tools)
        messages, _ = self._folded(answer_slot)
        chats, _ = self._chats(messages, list(conversation.tools), conversation.source)
        text = self._apply(chats, list(conversation.tools), conversation.source)
        core = text.index(ANSWER)
        return text[: first_part_start(text, core, [self.shape.openers.get("answer", "")], self.shape.header, 0)]

    @property
    def stop_text(self) -> str:
        """What the model writes when its answer is done."""
        answer = self.turn_ends.answer
        return (answer.marker or answer.last_marker or answer.stop_tag).strip() or self.tokenizer.eos_token

    @cached_property
    def _special_tokens(self) -> re.Pattern | None:
        tokens = sorted({token.content for token in self.tokenizer.added_tokens_decoder.values() if token.special}, key=len, reverse=True)
        return re.compile("|".join(map(re.escape, tokens))) if tokens else None

    def _literal_spans(self, messages: list[Message], tools: list, text: str, source: str, dropped: set[int]) -> tuple[Span, ...]:
        """Where the data's own text holds a special token's text: found by rendering once more with each
        such text hidden behind a marker, and substituting it back (which must give `text` again)."""
        pattern = self._special_tokens
        if pattern is None or not any(pattern.search(piece) for message in messages for piece in data_text(message)):
            return ()
        markers: dict[str, str] = {}

        def hide(piece: str) -> str:
            return pattern.sub(lambda found: markers.setdefault(found.group(), chr(LITERAL + len(markers))), piece)

        hidden = [self._chat(with_data_text(m, hide), drop=i in dropped) for i, m in enumerate(messages)]
        restored, found = substituted(self._apply(hidden, tools, source), {m: s for s, m in markers.items()})
        if restored != text:
            raise DataError(
                source, f"{self.name} renders the special-token text in this record ({', '.join(markers)}) in a way it cannot trace"
            )
        return tuple((position, position + len(next(s for s, m in markers.items() if m == marker))) for marker, position in found)

    def content_spans(self, conversation: Conversation) -> dict[int, Span]:
        """Where the content of each non-assistant message sits (by its index in the record), for the
        statistics of `sftlab inspect`; a system prompt folded into the first user turn counts as user."""
        messages, folded = self._folded(conversation)
        tools = list(conversation.tools)
        chats, _ = self._chats(messages, tools, conversation.source)
        text = self._apply(chats, tools, conversation.source)
        spans = {}
        for index, message in enumerate(messages):
            if message.role != "assistant" and message.chat_content():
                marked = [*chats[:index], self._chat(message, answer=ANSWER), *chats[index + 1 :]]
                span = changed_span(text, self._apply(marked, tools, conversation.source), ANSWER)
                if span is not None:
                    spans[index + folded] = span
        return spans
