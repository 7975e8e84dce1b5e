"""File formats we write and read: the .clab codec (k-means codebooks, Huffman-coded codes and relative indices),
and the limits every decoder of untrusted bytes checks before it allocates."""

from compression.formats.clab import SharedTensor, decode, encode
from compression.formats.limits import check_file_size

__all__ = ["SharedTensor", "check_file_size", "decode", "encode"]
