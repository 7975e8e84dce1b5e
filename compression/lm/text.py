"""Offline English text: the King James Bible (Debian `bible-kjv`), fortunes (Debian `fortunes`) or a user's .txt.

Evaluation text is the last tenth of a text; calibration windows come from the first nine tenths, so the two
never overlap when both come from the same text. Calibrating on a different text is allowed: that is a lesson.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from compression.core.errors import InputError, LimitExceeded
from compression.core.files import write_bytes_atomic
from compression.core.settings import cache_dir
from compression.formats import limits

KJV = "kjv"
FORTUNES = "fortunes"
CORPORA = (KJV, FORTUNES)
FORTUNES_DIR = Path("/usr/share/games/fortunes")
HELD_OUT = 0.1  # the last tenth of a text is for evaluation
CHARS_PER_TOKEN_BOUND = 12  # a window of T tokens is cut from at most 12*T characters of text
MAX_LINE_BYTES = 1 << 20  # a text is lines of prose; a 100 MB single line is not one
# C0 and C1 control characters other than the whitespace ones (tab, line feed, vertical tab, form feed, return)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class TextSplit:
    """One text cut into a calibration part and a held-out evaluation part."""

    name: str
    calibration: str
    evaluation: str


def corpus_available(name: str) -> bool:
    if name == KJV:
        return shutil.which("bible") is not None or _kjv_cache().is_file()
    if name == FORTUNES:
        return FORTUNES_DIR.is_dir()
    return False


def load_corpus(name: str) -> str:
    """The whole text of a built-in corpus."""
    if name == KJV:
        return _kjv()
    if name == FORTUNES:
        return _fortunes()
    raise InputError(f"unknown text {name!r}; choose one of {', '.join(CORPORA)} or give a .txt file")


def split_text(name: str, text: str) -> TextSplit:
    if len(text) < 2000:
        raise InputError(f"text {name!r} is too short ({len(text)} characters; at least 2000 needed)")
    cut = int(len(text) * (1 - HELD_OUT))
    return TextSplit(name, text[:cut], text[cut:])


def load_text(spec: str) -> TextSplit:
    """A built-in corpus name or a path to a UTF-8 .txt file, split into calibration and evaluation text."""
    if spec in CORPORA:
        return split_text(spec, load_corpus(spec))
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"text {spec!r} is neither {', '.join(CORPORA)} nor a file")
    limits.check_regular_file(path, path.name)
    return split_text(path.name, decode_text(path.read_bytes(), path.name))


def decode_text(raw: bytes, name: str) -> str:
    """Bytes that must be plain text: within the upload cap, UTF-8, no control characters but whitespace, and no line
    longer than MAX_LINE_BYTES. Anything else (a binary file, a NUL, a 100 MB line) is refused in one line."""
    limits.check_upload_size(raw, name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text (byte {exc.start:,} is 0x{raw[exc.start]:02x})") from None
    control = _CONTROL.search(text)
    if control:
        raise InputError(f"{name} is not plain text: character {control.start():,} is the control character "
                         f"U+{ord(control.group()):04X}")
    start = 0  # the start of a line; jump to the last line break within the next MAX_LINE_BYTES + 1 bytes
    while len(raw) - start > MAX_LINE_BYTES:
        end = start + MAX_LINE_BYTES + 1
        last = max(raw.rfind(b"\n", start, end), raw.rfind(b"\r", start, end))
        if last < 0:
            raise LimitExceeded(f"{name} has a line longer than {MAX_LINE_BYTES:,} bytes (byte {start:,} on); a "
                                "text must be broken into lines")
        start = last + 1
    return text


def evaluation_ids(tokenizer, text: str, samples: int, seq_len: int) -> Tensor:
    """(samples, seq_len) token ids: consecutive windows from the start of `text` (always the same)."""
    _check_shape(samples, seq_len)
    ids = _encode(tokenizer, text[: samples * seq_len * CHARS_PER_TOKEN_BOUND])
    if len(ids) < samples * seq_len:
        raise InputError(f"the evaluation text has {len(ids)} tokens; {samples}x{seq_len} needed")
    return torch.tensor(ids[: samples * seq_len]).view(samples, seq_len)


def calibration_ids(tokenizer, text: str, samples: int, seq_len: int, seed: int = 0) -> Tensor:
    """(samples, seq_len) token ids from windows at random places in `text` (fixed by `seed`)."""
    _check_shape(samples, seq_len)
    span = seq_len * CHARS_PER_TOKEN_BOUND
    if len(text) < span + 1:
        raise InputError(f"the calibration text is too short for windows of {seq_len} tokens")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(text) - span, (samples,), generator=generator).tolist()
    rows = []
    for start in starts:
        ids = _encode(tokenizer, text[start:start + span])
        if len(ids) < seq_len:
            raise InputError(f"the calibration text gives fewer than {seq_len} tokens per window")
        rows.append(ids[:seq_len])
    return torch.tensor(rows)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _check_shape(samples: int, seq_len: int) -> None:
    if samples < 1 or seq_len < 2:
        raise InputError(f"need at least 1 sample of 2 tokens, got {samples}x{seq_len}")


def _kjv_cache() -> Path:
    return cache_dir() / "text" / "kjv.txt"


def _kjv() -> str:
    path = _kjv_cache()
    if not path.is_file():
        if shutil.which("bible") is None:
            raise InputError("the King James text needs Debian's bible-kjv (sudo apt-get install bible-kjv)")
        text = subprocess.run(["bible", "gen1:1-rev22:21"], capture_output=True, text=True, check=True).stdout
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, text.encode("utf-8"))
    return path.read_text(encoding="utf-8")


def _fortunes() -> str:
    if not FORTUNES_DIR.is_dir():
        raise InputError("fortunes need Debian's fortunes package (sudo apt-get install fortunes)")
    files = sorted(p for p in FORTUNES_DIR.iterdir() if p.is_file() and not p.suffix and not p.is_symlink())
    # each fortune ends with a line holding a single %
    parts = [p.read_text(encoding="utf-8", errors="replace").replace("\n%\n", "\n\n") for p in files]
    return "".join(parts)
