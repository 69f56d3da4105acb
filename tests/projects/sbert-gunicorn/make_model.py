"""Writes model/: a sentence-transformers model folder, made here with no download.

A word-level tokenizer (24 words), a BERT encoder of one tiny layer randomly initialised
with a fixed seed, and mean pooling, saved with ``SentenceTransformer.save``.
``expected.json`` records what the saved model answers, for the test.

    python make_model.py    # with torch, sentence-transformers and scikit-learn installed
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer, models
from sklearn.metrics.pairwise import cosine_similarity
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers import models as tok_models
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
OUT = HERE / "model"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "rug", "good", "bad",
    "great", "awful", "film", "movie", "was", "is", "very", "not",
]  # fmt: skip
DOCS = ["the cat sat on the mat", "the dog ran under the rug", "the film was very good"]
QUERY = "a cat on a mat"


def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *WORDS])}
    tok = Tokenizer(tok_models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=32,
    )  # fmt: skip


def main() -> None:
    encoder = HERE / "build-encoder"
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
        initializer_range=0.5,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).eval().save_pretrained(encoder)
    tokenizer().save_pretrained(encoder)
    word = models.Transformer(str(encoder), max_seq_length=32)
    pooling = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling], device="cpu")
    model.save(str(OUT))
    for path in sorted(encoder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    encoder.rmdir()
    docs = model.encode(DOCS)
    query = model.encode([QUERY])
    scores = cosine_similarity(query, docs)[0]
    expected = {
        "docs": DOCS,
        "query": QUERY,
        "best": DOCS[int(scores.argmax())],
        "scores": [round(float(s), 4) for s in scores],
        "dimension": int(docs.shape[1]),
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
