"""Exercise 1: the Alpaca prompt of one instruction example (results/prompts.py)."""

PREAMBLE = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.")


def alpaca_prompt(entry: dict) -> str:
    """PREAMBLE, a blank line, "### Instruction:" and the instruction on the next line; then,
    only if entry["input"] is not empty, a blank line, "### Input:" and the input; then a
    blank line and "### Response:" followed by a newline (the model writes from there)."""
    raise NotImplementedError("hint: an f-string per section, joined with blank lines (\\n\\n)")
