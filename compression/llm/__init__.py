"""Language-model lab: load a causal LM offline, compress it layer by layer, measure it.

>>> lm = load_language_model("tiny-gpt")                  # or "smollm2", a HF folder, a .gguf file
>>> text = load_text("kjv")
>>> calib = calibration_ids(lm.tokenizer, text.calibration, 16, 128)
>>> run = Drive(compress(lm, PruneConfig("wanda", 0.5), calib))   # compression.core.progress.Drive
>>> for step in run: ...                                   # LayerStep per decoder layer; close() cancels
>>> perplexity(run.result.lm.model, evaluation_ids(lm.tokenizer, text.evaluation, 16, 128))
"""

from compression.llm.calibrate import LayerStep
from compression.llm.compressor import CompressionResult, compress
from compression.llm.configs import (ACT_GRANULARITIES, PRUNE_METHODS, QUANT_METHODS, SCOPES, LMConfig,
                                     PruneConfig, QuantizeConfig, SmoothQuantConfig, config_from_dict)
from compression.llm.evaluate import Perplexity, perplexity
from compression.llm.generation import channel_max, generate, layer_roles, max_positions
from compression.llm.loading import MODEL_NAMES, load_language_model
from compression.llm.models import (SMOLLM2, LanguageModel, ModelInfo, load_gguf, load_hf_folder, load_smollm2,
                                    save_hf_folder, smollm2_path)
from compression.llm.packed import fp16_size_bytes, pack, packed_size_bytes, unpack
from compression.llm.text import (CORPORA, FORTUNES, KJV, TextSplit, calibration_ids, corpus_available,
                                  evaluation_ids, load_text, split_text)
from compression.llm.tinygpt import TINY_GPT, TrainStep, load_tiny_gpt, train_tiny_gpt

__all__ = [
    "ACT_GRANULARITIES", "SCOPES",
    "CORPORA", "FORTUNES", "KJV", "MODEL_NAMES", "PRUNE_METHODS", "QUANT_METHODS", "SMOLLM2", "TINY_GPT",
    "CompressionResult", "LMConfig", "LanguageModel", "LayerStep", "ModelInfo", "Perplexity", "PruneConfig",
    "QuantizeConfig", "SmoothQuantConfig", "TextSplit", "TrainStep",
    "calibration_ids", "channel_max", "compress", "config_from_dict", "corpus_available", "evaluation_ids",
    "fp16_size_bytes", "generate", "layer_roles", "load_gguf", "load_hf_folder", "load_language_model", "load_smollm2",
    "load_text", "load_tiny_gpt", "max_positions", "pack", "packed_size_bytes", "perplexity", "save_hf_folder",
    "smollm2_path", "split_text", "train_tiny_gpt", "unpack",
]
