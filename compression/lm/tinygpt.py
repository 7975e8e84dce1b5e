"""The tiny GPT: a character-level GPT-2 of about 0.8M parameters trained here on the King James text.

It trains in under a minute here (fixed seed; held-out loss about 1.73 nats per character) and is cached as a
Hugging Face folder, like the zoo models. Trained from scratch and small, it has no activation outliers, which is
the teaching contrast with SmolLM2.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from compression.core.files import atomic_folder, file_lock
from compression.core.progress import run_to_end
from compression.core.settings import cache_dir
from compression.lm.evaluate import perplexity
from compression.lm.models import LanguageModel, load_hf_folder
from compression.lm.text import KJV, load_corpus, split_text

TINY_GPT = "tiny-gpt"
TINY_GPT_VERSION = 2
UNK = "<unk>"


@dataclass(frozen=True)
class TinyGPTRecipe:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    batch_size: int = 8
    steps: int = 1000
    warmup: int = 30
    lr: float = 3e-3
    seed: int = 0


@dataclass(frozen=True)
class TrainStep:
    step: int
    steps: int
    loss: float  # training loss of this batch, nats per character
    val_loss: float | None  # held-out loss, measured every few hundred steps

    @property
    def fraction(self) -> float:
        return self.step / self.steps


def tiny_gpt_folder() -> Path:
    return cache_dir() / "llm" / f"{TINY_GPT}-v{TINY_GPT_VERSION}"


def load_tiny_gpt() -> LanguageModel:
    """The cached tiny GPT, trained first (under a minute) if needed."""
    if not (tiny_gpt_folder() / "config.json").is_file():
        run_to_end(train_tiny_gpt())
    return load_hf_folder(tiny_gpt_folder(), name=TINY_GPT, capped=False)  # our own cache


def char_tokenizer(text: str) -> PreTrainedTokenizerFast:
    """One token per character seen in `text`, plus <unk>."""
    vocab = {UNK: 0, **{c: i + 1 for i, c in enumerate(sorted(set(text)))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK)


def train_tiny_gpt(recipe: TinyGPTRecipe = TinyGPTRecipe()) -> Generator[TrainStep, None, None]:
    """Train the tiny GPT from its fixed seed and cache it, yielding progress; nothing if already cached."""
    folder = tiny_gpt_folder()
    with file_lock(folder.parent / f".{folder.name}.lock"):  # one trainer per cache: others wait, then find it
        if (folder / "config.json").is_file():
            return
        split = split_text(KJV, load_corpus(KJV))
        tokenizer = char_tokenizer(split.calibration)
        data = torch.tensor(tokenizer(split.calibration)["input_ids"])
        held_out = torch.tensor(tokenizer(split.evaluation)["input_ids"])
        torch.manual_seed(recipe.seed)
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=recipe.block_size, n_embd=recipe.n_embd,
                            n_layer=recipe.n_layer, n_head=recipe.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(config)
        yield from _fit(model, data, held_out, recipe)
        model.eval()
        _save(model, tokenizer, folder)


def _fit(model, data, held_out, recipe: TinyGPTRecipe) -> Generator[TrainStep, None, None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0, betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(recipe.seed)
    val_ids = held_out[: 32 * recipe.block_size].view(32, recipe.block_size)
    for step in range(1, recipe.steps + 1):
        lr = recipe.lr * min(1.0, step / recipe.warmup) * 0.5 * (1 + math.cos(math.pi * step / recipe.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(data) - recipe.block_size, (recipe.batch_size,), generator=generator)
        batch = torch.stack([data[s:s + recipe.block_size] for s in starts.tolist()])
        model.train()
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        val = None
        if step % 200 == 0 or step == recipe.steps:
            model.eval()
            val = perplexity(model, val_ids, batch_size=16).nll
        yield TrainStep(step, recipe.steps, loss.item(), val)


def _save(model, tokenizer, folder: Path) -> None:
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
