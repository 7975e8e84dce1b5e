"""The pure tensor math of knowledge distillation: the Hinton loss, its parts, label masks and agreement."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_TEMPERATURE = 100.0  # softmax(z / T) is already flat long before this


@dataclass(frozen=True)
class KDLoss:
    """The loss and its two weighted parts: total = hard + soft (+ hint when hint distillation is on)."""

    total: Tensor
    hard: Tensor  # alpha * CE(y, s) over the labeled samples of the batch
    soft: Tensor  # (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))


def soft_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch; the teacher is the target."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)  # (B, C)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    # Gradients of the softened KL shrink like 1/T^2; the factor keeps the soft term's pull independent of T.
    return kl * temperature * temperature


def masked_cross_entropy(logits: Tensor, labels: Tensor, labeled: Tensor | None = None) -> Tensor:
    """Mean cross-entropy over the samples whose label may be used; an exact zero when there are none."""
    if labeled is None:
        return F.cross_entropy(logits, labels)
    if not bool(labeled.any()):
        return logits.sum() * 0.0  # keeps the graph, so backward() still works on a batch without labels
    return F.cross_entropy(logits[labeled], labels[labeled])


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, alpha: float,
                      temperature: float, labeled: Tensor | None = None) -> KDLoss:
    """L = alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))."""
    hard = alpha * masked_cross_entropy(student_logits, labels, labeled)
    soft = (1.0 - alpha) * soft_loss(student_logits, teacher_logits, temperature)
    return KDLoss(hard + soft, hard, soft)


def top1_agreement(a_logits: Tensor, b_logits: Tensor) -> float:
    """Fraction of samples on which two models predict the same class."""
    return float((a_logits.argmax(1) == b_logits.argmax(1)).float().mean())


def labeled_mask(n: int, fraction: float, seed: int) -> Tensor:
    """Boolean (n,) mask of the training images whose labels may be used: round(fraction * n), at least 1."""
    count = min(n, max(1, round(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(10_007 + seed))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:count]] = True
    return mask
