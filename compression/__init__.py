"""Compression Lab's engine: models, data, training and measurements for pruning, quantization and distillation."""
