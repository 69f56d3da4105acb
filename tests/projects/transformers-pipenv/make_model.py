"""Writes model/: a Hugging Face model folder, made here with no download.

A word-level tokenizer (the `tokenizers` library, a 24-word vocabulary) and a BERT
sequence classifier of one tiny layer, randomly initialised with a fixed seed, saved with
``save_pretrained``. ``expected.json`` records what the saved model answers, for the test.

    python make_model.py    # with torch, transformers and tokenizers installed
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
OUT = HERE / "model"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "rug", "good", "bad",
    "great", "awful", "film", "movie", "was", "is", "very", "not",
]  # fmt: skip
LABELS = ["negative", "neutral", "positive"]
PROBE = "the film was very good"


def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=32,
    )


def main() -> None:
    tok = tokenizer()
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        initializer_range=0.5,  # logits far apart: the argmax does not hang on rounding
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    tok.save_pretrained(OUT)
    model.save_pretrained(OUT)
    enc = tok(PROBE, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits[0]
    expected = {
        "text": PROBE,
        "input_ids": enc["input_ids"][0].tolist(),
        "label": LABELS[int(logits.argmax())],
        "logits": [round(float(v), 4) for v in logits],
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
