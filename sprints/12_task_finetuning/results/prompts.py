"""How an instruction and a conversation become text, and which tokens the loss trains on.

Two formats, both plain text that GPT-2's tokenizer already knows (no new embedding rows):

Alpaca (what LLMs-from-scratch ch. 7 and the 1,100-example set use)::

    Below is an instruction that describes a task. Write a response that appropriately
    completes the request.

    ### Instruction:
    Rewrite the sentence in passive voice.

    ### Input:
    The chef cooked the meal.

    ### Response:
    The meal was cooked by the chef.<|endoftext|>

The chat template: the same idea with roles, so a conversation of several turns fits::

    A conversation between a user and a helpful assistant.

    ### User:
    Hi!

    ### Assistant:
    Hello! How can I help?<|endoftext|>

    ### User:
    ...

Each assistant turn ends with ``<|endoftext|>`` (id 50256 for GPT-2): the model learns to emit
it, and generation stops there. Only the response tokens (and that end-of-text) are trained
on; the prompt is context. ``encode_example`` and ``encode_chat`` therefore return the token
ids together with a mask that says, for each token, whether the loss predicts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
CHAT_SYSTEM = "A conversation between a user and a helpful assistant."
ROLES = {"user": "User", "assistant": "Assistant"}
FORMATS = ("alpaca", "chat")


def alpaca_prompt(entry: dict[str, Any]) -> str:
    """The prompt of one example: preamble, instruction, the input if any, "### Response:"."""
    text = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{entry['instruction']}"
    if entry.get("input"):
        text += f"\n\n### Input:\n{entry['input']}"
    return text + "\n\n### Response:\n"


def example_to_messages(entry: dict[str, Any]) -> list[dict[str, str]]:
    """An Alpaca example as a two-turn conversation (the input, if any, joins the question)."""
    question = entry["instruction"]
    if entry.get("input"):
        question += "\n\n" + entry["input"]
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": entry["output"]}]


def _role_header(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {sorted(ROLES)}")
    return f"\n\n### {ROLES[role]}:\n"


def chat_prompt(messages: Sequence[dict[str, str]]) -> str:
    """The text a model continues to answer: the conversation so far (ending with the user's
    message), each earlier assistant turn closed by <|endoftext|>, then "### Assistant:"."""
    text = CHAT_SYSTEM
    for message in messages:
        text += _role_header(message["role"]) + message["content"]
        if message["role"] == "assistant":
            text += "<|endoftext|>"
    return text + _role_header("assistant")


def _eot(tokenizer) -> int:
    eot = getattr(tokenizer, "eot_token_id", None)
    if eot is None:
        raise ValueError(f"{tokenizer!r} has no end-of-text token; instruction tuning needs "
                         "one to teach the model where an answer stops (use a GPT-2 or BPE "
                         "tokenizer)")
    return eot


def encode_example(tokenizer, entry: dict[str, Any], fmt: str = "alpaca"
                   ) -> tuple[list[int], list[bool]]:
    """(ids, trained): the example's tokens and, per token, whether the loss predicts it
    (True on the response and its closing <|endoftext|>, False on the prompt)."""
    if fmt == "chat":
        return encode_chat(tokenizer, example_to_messages(entry))
    if fmt != "alpaca":
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
    prompt = tokenizer.encode(alpaca_prompt(entry))
    response = tokenizer.encode(entry["output"]) + [_eot(tokenizer)]
    return prompt + response, [False] * len(prompt) + [True] * len(response)


def encode_chat(tokenizer, messages: Sequence[dict[str, str]]) -> tuple[list[int], list[bool]]:
    """(ids, trained) of a whole conversation: True on every assistant turn's tokens and its
    <|endoftext|>, False on the system line, the role headers and the user's turns."""
    eot = _eot(tokenizer)
    ids = tokenizer.encode(CHAT_SYSTEM)
    trained = [False] * len(ids)
    for message in messages:
        header = tokenizer.encode(_role_header(message["role"]))
        ids += header
        trained += [False] * len(header)
        body = tokenizer.encode(message["content"])
        if message["role"] == "assistant":
            body = body + [eot]
        ids += body
        trained += [message["role"] == "assistant"] * len(body)
    return ids, trained


def prompt_ids(tokenizer, entry: dict[str, Any], fmt: str = "alpaca") -> list[int]:
    """The tokens a model is given to answer ``entry`` (its response left out)."""
    if fmt == "chat":
        return tokenizer.encode(chat_prompt(example_to_messages(entry)[:1]))
    if fmt != "alpaca":
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
    return tokenizer.encode(alpaca_prompt(entry))
