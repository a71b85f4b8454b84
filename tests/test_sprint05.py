"""Sprint 5: embeddings, positional encodings, PCA, and one visualization script end to end."""

import math
from importlib import import_module

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

S5 = "sprints.05_embeddings_and_positional_encoding.results"
pe_mod = import_module(f"{S5}.positional_encoding")
learned_mod = import_module(f"{S5}.learned_positional_embedding")
custom_mod = import_module(f"{S5}.custom_embedding")
pca_mod = import_module(f"{S5}.pca")


def closed_form_table(max_len, d_model):
    """The formula of 'Attention Is All You Need', one entry at a time, in float64."""
    table = np.zeros((max_len, d_model))
    for pos in range(max_len):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            table[pos, 2 * i] = math.sin(angle)
            table[pos, 2 * i + 1] = math.cos(angle)
    return table


@pytest.mark.parametrize("max_len,d_model", [(1, 2), (7, 6), (50, 64), (2048, 16)])
def test_sinusoidal_table_matches_closed_form(max_len, d_model):
    table = pe_mod.sinusoidal_encoding(max_len, d_model)
    assert table.shape == (max_len, d_model) and table.dtype == torch.float32
    # float32 angles up to 2047 rad carry ~1e-4 absolute error; smaller tables are tighter.
    atol = 1e-5 if max_len <= 64 else 5e-4
    np.testing.assert_allclose(table.numpy(), closed_form_table(max_len, d_model), atol=atol)


def test_odd_d_model_is_rejected_with_a_message():
    with pytest.raises(ValueError, match="even"):
        pe_mod.sinusoidal_encoding(10, 7)
    with pytest.raises(ValueError, match="even"):
        pe_mod.PositionalEncodingBatchFirst(7)
    with pytest.raises(ValueError, match="even"):
        pe_mod.SinusoidalPositionalEmbedding(10, 5)


def test_batch_first_module_adds_exactly_the_table_prefix():
    d, max_len = 8, 20
    module = pe_mod.PositionalEncodingBatchFirst(d, max_len=max_len)
    x = torch.randn(3, 11, d)
    expected = x + torch.from_numpy(closed_form_table(11, d)).float()  # same PE for every batch
    torch.testing.assert_close(module(x), expected, atol=1e-6, rtol=0)
    assert list(module.state_dict()) == [] and not list(module.parameters())
    module(torch.randn(1, max_len, d))  # exactly max_len is allowed
    with pytest.raises(ValueError, match="max_len"):
        module(torch.randn(1, max_len + 1, d))


def test_batch_first_dropout_only_in_training():
    module = pe_mod.PositionalEncodingBatchFirst(4, max_len=10, dropout=0.5)
    x = torch.zeros(2, 5, 4)
    module.eval()
    torch.testing.assert_close(module(x), module.pe[:5].expand(2, 5, 4))
    module.train()
    assert (module(x) == 0).any()  # dropout zeroed some entries (P(no zero of 40) = 2^-40)


def test_sinusoidal_embedding_is_a_parameter_free_table_lookup():
    module = pe_mod.SinusoidalPositionalEmbedding(32, 6)
    positions = torch.tensor([[0, 5, 31], [2, 2, 7]])
    out = module(positions)
    assert out.shape == (2, 3, 6)
    reference = torch.from_numpy(closed_form_table(32, 6)).float()
    torch.testing.assert_close(out, reference[positions], atol=1e-6, rtol=0)
    # Drop-in for nn.Embedding: an nn.Embedding holding the same table gives the same rows.
    emb = nn.Embedding.from_pretrained(reference)
    torch.testing.assert_close(out, emb(positions), atol=1e-6, rtol=0)
    assert not list(module.parameters()) and list(module.state_dict()) == []


def test_learned_positional_embedding_adds_embedding_rows():
    torch.manual_seed(0)
    module = learned_mod.LearnedPositionalEmbedding(max_len=10, d_model=4)
    assert isinstance(module.embedding, nn.Embedding)
    x = torch.randn(2, 6, 4)
    expected = x + module.embedding.weight[:6].unsqueeze(0)  # row t added at position t
    torch.testing.assert_close(module(x), expected)
    module(x).sum().backward()
    grad = module.embedding.weight.grad
    assert torch.all(grad[:6] == 2.0) and torch.all(grad[6:] == 0)  # B=2 uses of rows 0..5
    with pytest.raises(ValueError, match="max_len"):
        module(torch.randn(1, 11, 4))


def test_embedding_lookup_equals_one_hot_matmul():
    torch.manual_seed(0)
    emb = nn.Embedding(7, 5)
    ids = torch.tensor([[1, 6, 1], [0, 3, 2]])
    one_hot = F.one_hot(ids, num_classes=7).float()  # (2, 3, 7)
    torch.testing.assert_close(emb(ids), one_hot @ emb.weight, rtol=0, atol=0)


def test_custom_embedding_matches_nn_embedding_outputs_and_gradients():
    torch.manual_seed(0)
    ours = custom_mod.CustomEmbedding(9, 4)
    ref = nn.Embedding(9, 4)
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
    ids = torch.tensor([[1, 4, 4, 0], [8, 1, 1, 1]])
    upstream = torch.randn(2, 4, 4)  # an arbitrary gradient arriving from above
    out_ours, out_ref = ours(ids), ref(ids)
    torch.testing.assert_close(out_ours, out_ref, rtol=0, atol=0)
    out_ours.backward(upstream)
    out_ref.backward(upstream)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    unused = [r for r in range(9) if r not in ids.unique().tolist()]
    assert torch.all(ours.weight.grad[unused] == 0)
    # Repeated ids accumulate: row 1 is used 4 times.
    torch.testing.assert_close(ours.weight.grad[1], upstream[ids == 1].sum(0))


def test_custom_embedding_rejects_bad_indices():
    emb = custom_mod.CustomEmbedding(5, 2)
    with pytest.raises(IndexError, match=r"\[0, 4\]"):
        emb(torch.tensor([5]))
    with pytest.raises(IndexError):
        emb(torch.tensor([-1]))
    with pytest.raises(TypeError, match="integer"):
        emb(torch.tensor([1.0]))


@pytest.mark.parametrize("shape,k", [((60, 8), 3), ((40, 64), 10), ((300, 5), 5)])
def test_pca_matches_sklearn_up_to_sign(shape, k):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    # Correlated features with distinct variances so every component is well defined.
    x = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) + rng.normal(size=shape[1])
    ours = pca_mod.pca(torch.from_numpy(x), n_components=k)
    ref = PCA(n_components=k, svd_solver="full").fit(x)
    signs = np.sign((ours.components.numpy() * ref.components_).sum(axis=1))
    assert np.all(np.abs(signs) == 1)
    np.testing.assert_allclose(ours.components.numpy() * signs[:, None], ref.components_,
                               atol=1e-8)
    np.testing.assert_allclose(ours.projected.numpy() * signs, ref.transform(x), atol=1e-8)
    np.testing.assert_allclose(ours.explained_variance.numpy(), ref.explained_variance_,
                               rtol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_ratio.numpy(),
                               ref.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(ours.mean.numpy(), ref.mean_, atol=1e-12)


def test_pca_rejects_too_many_components():
    with pytest.raises(ValueError, match="n_components"):
        pca_mod.pca(torch.randn(5, 3), n_components=4)


def test_pca_script_writes_readable_pngs(tmp_path, capsys):
    import matplotlib.image as mpimg

    script = import_module(f"{S5}.pca_example")
    threads = torch.get_num_threads()
    try:
        script.main(["--out-dir", str(tmp_path), "--n-samples", "200", "--epochs", "20"])
    finally:
        torch.set_num_threads(threads)  # the script pins 1 thread; keep later tests unaffected
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["pca_digits.png", "pca_explained_variance.png"]
    for name in names:
        image = mpimg.imread(tmp_path / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert "max |ours - sklearn|" in capsys.readouterr().out
