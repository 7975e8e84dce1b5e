"""Causal language models, a model family: loading offline (HF folder, GGUF, SmolLM2, the tiny GPT), texts,
perplexity, generation, and the layer map the techniques are given (`DecoderLayers`).

>>> lm = load_language_model("tiny-gpt")                  # or "smollm2", a HF folder, a .gguf file
>>> text = load_text("kjv")
>>> calib = calibration_ids(lm.tokenizer, text.calibration, 16, 128)
>>> run = Drive(compression.pipeline.compress_lm(lm, lm_config("wanda", 0.5), calib))   # one BlockStep per layer
>>> perplexity(run.result.lm.model, evaluation_ids(lm.tokenizer, text.evaluation, 16, 128))
"""

from compression.lm.evaluate import EvalProgress, Perplexity, perplexity, perplexity_interval, perplexity_steps
from compression.lm.generation import generate, max_positions
from compression.lm.layer_map import (FAMILIES, DecoderLayers, Family, decoder_layers, family_of, layer_linears,
                                      layer_roles)
from compression.lm.loading import MODEL_NAMES, load_language_model
from compression.lm.models import (SMOLLM2, LanguageModel, ModelInfo, load_gguf, load_hf_folder, load_smollm2,
                                   save_hf_folder, smollm2_path)
from compression.lm.text import (CORPORA, FORTUNES, KJV, TextSplit, calibration_ids, corpus_available, decode_text,
                                 evaluation_ids, load_text, split_text)
from compression.lm.tinygpt import TINY_GPT, TrainStep, load_tiny_gpt, train_tiny_gpt

__all__ = [
    "CORPORA", "FAMILIES", "FORTUNES", "KJV", "MODEL_NAMES", "SMOLLM2", "TINY_GPT",
    "DecoderLayers", "EvalProgress", "Family", "LanguageModel", "ModelInfo", "Perplexity", "TextSplit", "TrainStep",
    "calibration_ids", "corpus_available", "decode_text", "decoder_layers", "evaluation_ids",
    "family_of", "generate", "layer_linears", "layer_roles", "load_gguf", "load_hf_folder", "load_language_model",
    "load_smollm2", "load_text", "load_tiny_gpt", "max_positions", "perplexity", "perplexity_interval",
    "perplexity_steps", "save_hf_folder", "smollm2_path", "split_text", "train_tiny_gpt",
]
