"""A preallocated key/value cache for autoregressive decoding.

Without a cache, generating token t+1 reruns the whole model over all t tokens of the
context, although the keys and values of tokens 0..t-1 have not changed (attention is
causal: an earlier token never looks at a later one). The cache stores every layer's
keys and values once; each decoding step then feeds only the newest token.

Protocol (see notes/02_kv_cache.md; cached_forward.py's ``forward_with_cache`` calls it, on
sprint 8's model):

- ``length``: how many positions are cached; the new tokens sit at positions
  ``length, length + 1, ...``.
- ``update(layer_idx, k, v)``: layer ``layer_idx`` hands over its new keys/values
  (B, n_head, T_new, head_dim); the cache writes them in place and returns views of
  all keys/values so far (B, n_head, length + T_new, head_dim).
- ``advance(T_new)``: called once after the last layer, so every layer of one forward
  pass sees the same ``length``.

The tensors are allocated once at ``max_len`` (the model's block size); a step writes
into a slice, never ``torch.cat`` (which would copy the whole history every step and
make decoding quadratic in memory traffic).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class KVCache:
    """Keys and values of every layer, shape (n_layer, B, n_head, max_len, head_dim)."""

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        max_len: int,
        head_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, value in [
            ("n_layer", n_layer),
            ("batch_size", batch_size),
            ("n_head", n_head),
            ("max_len", max_len),
            ("head_dim", head_dim),
        ]:
            if value < 1:
                raise ValueError(f"KVCache: {name} must be a positive integer, got {value}")
        self.n_layer = n_layer
        self.batch_size = batch_size
        self.n_head = n_head
        self.max_len = max_len
        self.head_dim = head_dim
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        # empty, not zeros: positions >= length are never read, so no need to clear them.
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0

    @staticmethod
    def _model_spec(model: nn.Module, batch_size: int, dtype: torch.dtype | None) -> dict:
        """The constructor's arguments for ``model`` (see ``for_model``)."""
        cfg = model.config
        param = next(model.parameters())
        return dict(
            n_layer=cfg.n_layer,
            batch_size=batch_size,
            n_head=cfg.n_head,
            max_len=cfg.block_size,
            head_dim=cfg.n_embd // cfg.n_head,
            device=param.device,
            dtype=dtype if dtype is not None else param.dtype,
        )

    @classmethod
    def for_model(
        cls, model: nn.Module, batch_size: int, dtype: torch.dtype | None = None
    ) -> KVCache:
        """A cache sized for ``model`` (a sprint 8 GPT): block_size positions per layer.

        ``dtype`` defaults to the dtype of the model's weights, so a bf16 model gets a
        bf16 cache (attention then needs no conversions).
        """
        return cls(**cls._model_spec(model, batch_size, dtype))

    def fits(self, model: nn.Module, batch_size: int, dtype: torch.dtype | None = None) -> bool:
        """Whether this cache is what ``for_model(model, batch_size, dtype)`` would make."""
        spec = self._model_spec(model, batch_size, dtype)
        return (all(getattr(self, name) == spec[name] for name in
                    ("n_layer", "batch_size", "n_head", "max_len", "head_dim", "dtype"))
                and self.device == torch.device(spec["device"]))

    @property
    def dtype(self) -> torch.dtype:
        return self.k.dtype

    @property
    def device(self) -> torch.device:
        return self.k.device

    def nbytes(self) -> int:
        """Bytes held by the cache (keys and values, all layers, all positions)."""
        return self.k.numel() * self.k.element_size() * 2

    def update(self, layer_idx: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store layer ``layer_idx``'s new k, v (B, n_head, T_new, head_dim) at
        positions [length, length + T_new) and return all keys/values so far."""
        if not 0 <= layer_idx < self.n_layer:
            raise IndexError(f"KVCache: layer_idx {layer_idx} outside 0..{self.n_layer - 1}")
        B, nh, T_new, hd = k.shape
        if (B, nh, hd) != (self.batch_size, self.n_head, self.head_dim) or v.shape != k.shape:
            raise ValueError(
                f"KVCache: got k {tuple(k.shape)} and v {tuple(v.shape)}, expected "
                f"({self.batch_size}, {self.n_head}, T_new, {self.head_dim}) for both; "
                "build the cache with KVCache.for_model(model, batch_size)"
            )
        end = self.length + T_new
        if end > self.max_len:
            raise ValueError(
                f"KVCache: {self.length} cached + {T_new} new positions exceed max_len "
                f"{self.max_len}; call reset() and prefill a shorter context"
            )
        # In-place writes into the preallocated buffers (dtype cast if the model differs).
        self.k[layer_idx, :, :, self.length : end] = k
        self.v[layer_idx, :, :, self.length : end] = v
        # Views, not copies: (B, nh, end, hd) with the stride of max_len along positions.
        return self.k[layer_idx, :, :, :end], self.v[layer_idx, :, :, :end]

    def advance(self, n: int) -> None:
        """Mark ``n`` more positions as cached (after every layer has called update)."""
        if n < 0 or self.length + n > self.max_len:
            raise ValueError(
                f"KVCache: cannot advance by {n} from length {self.length} (max_len {self.max_len})"
            )
        self.length += n

    def reset(self) -> None:
        """Forget everything; the buffers are reused (nothing is reallocated)."""
        self.length = 0

    def __repr__(self) -> str:
        return (
            f"KVCache(n_layer={self.n_layer}, batch_size={self.batch_size}, "
            f"n_head={self.n_head}, max_len={self.max_len}, head_dim={self.head_dim}, "
            f"dtype={self.dtype}, length={self.length})"
        )
