"""Checks for the sprint 12 exercises; references: prompt strings written out here, tensors
built by hand and by a plain-Python loop, F.cross_entropy(ignore_index=-100) and a loop of
log-softmax picks."""

import math

import torch
import torch.nn.functional as F

from sprints.check import expect_close, expect_equal

_PREAMBLE = ("Below is an instruction that describes a task. Write a response that "
             "appropriately completes the request.")


def check_ex01_alpaca_prompt(m):
    with_input = {"instruction": "Rewrite the sentence in passive voice.",
                  "input": "The chef cooked the meal.", "output": "The meal was cooked."}
    expected = (_PREAMBLE + "\n\n### Instruction:\nRewrite the sentence in passive voice."
                "\n\n### Input:\nThe chef cooked the meal.\n\n### Response:\n")
    expect_equal("alpaca_prompt(an entry with an input)", m.alpaca_prompt(with_input), expected)
    no_input = {"instruction": "Name a primary color.", "input": "", "output": "Red."}
    expected = _PREAMBLE + "\n\n### Instruction:\nName a primary color.\n\n### Response:\n"
    expect_equal("alpaca_prompt(an entry whose input is empty: no ### Input section)",
                 m.alpaca_prompt(no_input), expected)


def _loop_collate(examples, pad_id):
    """Plain Python: pad, then for every position the next token or -100."""
    longest = max(len(ids) for ids, _ in examples)
    inputs, targets = [], []
    for ids, trained in examples:
        ids = list(ids) + [pad_id] * (longest - len(ids))
        trained = list(trained) + [False] * (longest - len(trained))
        inputs.append(ids[:-1])
        targets.append([ids[i] if trained[i] else -100 for i in range(1, longest)])
    return torch.tensor(inputs), torch.tensor(targets)


def check_ex02_shift_and_mask(m):
    a = ([11, 12, 13, 14, 99], [False, False, True, True, True])  # 99 closes the response
    b = ([21, 22, 99], [False, True, True])
    inputs, targets = m.collate([a, b], 99)
    call = "collate([a (5 tokens, 2 prompt), b (3 tokens, 1 prompt)], pad_id=99)"
    expect_equal(f"inputs of {call}", inputs, torch.tensor([[11, 12, 13, 14], [21, 22, 99, 99]]))
    expect_equal(f"targets of {call} (the response's own 99 stays; padding is -100)", targets,
                 torch.tensor([[-100, 13, 14, 99], [22, 99, -100, -100]]))
    generator = torch.Generator().manual_seed(0)
    examples = []
    for n in [7, 3, 9, 5]:
        ids = torch.randint(0, 50, (n,), generator=generator).tolist() + [50]
        n_prompt = int(torch.randint(1, n, (1,), generator=generator))
        examples.append((ids, [False] * n_prompt + [True] * (n + 1 - n_prompt)))
    got_inputs, got_targets = m.collate(examples, 50)
    want_inputs, want_targets = _loop_collate(examples, 50)
    expect_equal("inputs of collate(4 random examples of 4 to 10 tokens)", got_inputs,
                 want_inputs)
    expect_equal("targets of collate(4 random examples of 4 to 10 tokens)", got_targets,
                 want_targets)


def check_ex03_response_loss(m):
    logits = torch.randn(3, 5, 7, dtype=torch.float64)
    targets = torch.tensor([[-100, -100, 2, 3, 6], [-100, 4, 6, -100, -100],
                            [-100, -100, -100, -100, 1]])
    got = m.response_loss(logits, targets)
    picks = []
    for b in range(3):
        for t in range(5):
            if targets[b, t] != -100:
                row = logits[b, t].tolist()
                top = max(row)
                log_z = top + math.log(sum(math.exp(v - top) for v in row))
                picks.append(log_z - row[int(targets[b, t])])
    call = "response_loss(logits (3, 5, 7), targets with 6 response positions)"
    expect_close(f"{call} against a loop of -log softmax picks", got, sum(picks) / len(picks),
                 atol=1e-9, rtol=1e-9)
    reference = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), ignore_index=-100)
    expect_close(f"{call} against F.cross_entropy(ignore_index=-100)", got, reference,
                 atol=1e-9, rtol=1e-9)
    changed = logits.clone()
    changed[targets == -100] = 1e3  # masked positions must not matter at all
    expect_close(f"{call} with huge logits at the masked positions", m.response_loss(changed,
                 targets), reference, atol=1e-9, rtol=1e-9)


CHECKS = [check_ex01_alpaca_prompt, check_ex02_shift_and_mask, check_ex03_response_loss]
