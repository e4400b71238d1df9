"""deepfit.seq2seq.vectors: GloVe / word2vec / fastText text files, coverage, errors naming file and line."""
from __future__ import annotations

import gzip

import pytest
import torch

from deepfit.seq2seq import VectorsFileError, load_vectors
from deepfit.text import Vocab

VOCAB = Vocab.build([["the", "dog", "runs", "the", "cat", "zzz", "the", "dog", "Berlin"]])
# itos: xxunk xxpad xxbos xxeos the dog Berlin cat runs zzz  (the: 3 times, dog: 2, others once)


def _vec_lines(words, dim=3):
    return [f"{w} " + " ".join(f"{(i + 1) * 0.5 + j:.2f}" for j in range(dim)) for i, w in enumerate(words)]


def test_glove_format_rows_and_coverage(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("\n".join(_vec_lines(["the", "dog", "cat", "berlin", "other", "words"])) + "\n")
    w, cov = load_vectors(path, VOCAB, seed=0)
    assert w.shape == (len(VOCAB), 3) and w.dtype == torch.float32
    assert torch.allclose(w[VOCAB.stoi["the"]], torch.tensor([0.5, 1.5, 2.5]))
    assert torch.allclose(w[VOCAB.stoi["cat"]], torch.tensor([1.5, 2.5, 3.5]))
    assert torch.allclose(w[VOCAB.stoi["Berlin"]], torch.tensor([2.0, 3.0, 4.0]))  # found lower-cased
    assert (w[VOCAB.pad_idx] == 0).all()
    # 6 non-special tokens, 4 found (the dog cat Berlin); 7 of the 9 training tokens are covered
    assert (cov.n_vocab, cov.n_found, cov.n_file, cov.dim) == (6, 4, 6, 3)
    assert cov.coverage == pytest.approx(4 / 6) and cov.token_coverage == pytest.approx(7 / 9)
    assert set(cov.missing) == {"runs", "zzz"}
    assert "4 of the 6 vocabulary tokens" in str(cov)
    # unknown rows are random around the found vectors' mean, the same for the same seed
    w2, _ = load_vectors(path, VOCAB, seed=0)
    assert torch.equal(w, w2) and not torch.equal(w[VOCAB.stoi["runs"]], w[VOCAB.stoi["zzz"]])


def test_fasttext_header_and_gzip(tmp_path):
    lines = ["4 3"] + _vec_lines(["the", "runs", "x", "y"])
    path = tmp_path / "wiki.vec.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    w, cov = load_vectors(path, VOCAB)
    assert cov.n_file == 4 and cov.n_found == 2 and cov.dim == 3
    assert torch.allclose(w[VOCAB.stoi["runs"]], torch.tensor([1.0, 2.0, 3.0]))


def test_wrong_dimension_names_file_and_line(tmp_path):
    lines = _vec_lines(["the", "dog"]) + ["cat 0.1 0.2"]
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(VectorsFileError, match=r"bad\.txt line 3: 'cat' has 2 values but the first vector gives 3"):
        load_vectors(path, VOCAB)
    with pytest.raises(VectorsFileError, match=r"line 1: the header says 3-d vectors but 50 were asked for"):
        (tmp_path / "h.vec").write_text("2 3\n" + "\n".join(_vec_lines(["a", "b"])) + "\n")
        load_vectors(tmp_path / "h.vec", VOCAB, dim=50)
    (tmp_path / "h2.vec").write_text("2 4\n" + "\n".join(_vec_lines(["a", "b"])) + "\n")
    with pytest.raises(VectorsFileError, match=r"h2\.vec line 2: 'a' has 3 values but its header gives 4"):
        load_vectors(tmp_path / "h2.vec", VOCAB)


def test_bad_format_errors(tmp_path):
    (tmp_path / "n.txt").write_text("the 0.1 abc 0.3\n")
    with pytest.raises(VectorsFileError, match=r"n\.txt line 1: the value 'abc' of 'the' is not a number"):
        load_vectors(tmp_path / "n.txt", VOCAB)
    (tmp_path / "b.bin").write_bytes(b"\x00\xff\xfe\x80" * 100)
    with pytest.raises(VectorsFileError, match="not UTF-8 text"):
        load_vectors(tmp_path / "b.bin", VOCAB)
    (tmp_path / "w.txt").write_text("justaword\n")
    with pytest.raises(VectorsFileError, match="has no numbers after it"):
        load_vectors(tmp_path / "w.txt", VOCAB)
    with pytest.raises(FileNotFoundError, match="none.txt"):
        load_vectors(tmp_path / "none.txt", VOCAB)
