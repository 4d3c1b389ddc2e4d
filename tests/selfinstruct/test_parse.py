"""Parsing generated continuations into tasks."""

from __future__ import annotations

from sftlab.selfinstruct.parse import parse_response
from tests.selfinstruct.test_self_instruct import block


def test_a_reply_with_a_mistyped_header_is_malformed_not_an_instruction():
    # A chat reply that starts its own list with a mistyped header instead of continuing "4. Instruction:".
    text = "1. Instructions: \nAtheism is the absence of belief in gods. Explain it to a child.\n1. Input:\n<noinput>\n1. Output:\nSome people..."
    tasks, reasons = parse_response(text + "\n###\n" + block(2, "Name three rivers that flow through Germany."), 4, False)
    assert [task.instruction for task in tasks] == ["Name three rivers that flow through Germany."]
    assert reasons == {"malformed": 1}


def test_a_continuation_and_a_reply_with_its_own_header_both_parse():
    continued, _ = parse_response(" Name three rivers in Spain.\n4. Input:\n<noinput>\n4. Output:\nEbro, Tagus, Douro.", 4, False)
    own_header, _ = parse_response("###\n" + block(4, "Name three rivers in Spain.", output="Ebro, Tagus, Douro."), 4, False)
    assert continued == own_header and continued[0].output == "Ebro, Tagus, Douro." and continued[0].input == ""
