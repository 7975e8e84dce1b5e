"""Tiny language models for the language-model tests, built from configs (random weights, no download)."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from compression.lm.models import LanguageModel, describe
from compression.lm.tinygpt import char_tokenizer

ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\n0123456789"
TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. ") * 60


def tokenizer():
    return char_tokenizer(ALPHABET)


def tiny_llama(seed: int = 0, kv_heads: int = 2) -> LanguageModel:
    torch.manual_seed(seed)
    tok = tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=128,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(config).eval().requires_grad_(False)
    return LanguageModel(model, tok, describe(model, "tiny-llama", "test"))


def tiny_gpt2(seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    tok = tokenizer()
    config = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_positions=128,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval().requires_grad_(False)
    return LanguageModel(model, tok, describe(model, "tiny-gpt2", "test"))


def token_ids(lm: LanguageModel, samples: int = 8, seq_len: int = 64, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, len(lm.tokenizer), (samples, seq_len), generator=generator)
