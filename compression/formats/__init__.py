"""File formats we write and read: the .clab codec (k-means codebooks, Huffman-coded codes and relative indices)."""

from compression.formats.clab import SharedTensor, decode, encode

__all__ = ["SharedTensor", "decode", "encode"]
