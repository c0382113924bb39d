"""The distillation loss: the student against the teacher's next-token distributions.

For a batch of rows (some :class:`~kinject.training.trainer.Distilled`, some plain texts), at each
position whose label is a token to learn:

- ``forward_kl`` (form 1): KL(p_T || p_S) = sum_k p_T(k) [log p_T(k) - log p_S(k)] over the
  teacher's top-k tokens, p_T renormalised over them, p_S the student's full softmax (so the
  gradient is that of a soft-label cross-entropy);
- ``reverse_kl`` (form 2): KL(q_S || p_T) with both renormalised over the teacher's top-k tokens
  (an approximation: the teacher's mass outside its top k is not stored);
- ``forward_kl_tail`` (form 3, ``+anchor``'s): the exact KL between the two distributions with
  every token outside the teacher's top k pooled into one outcome: sum_k p_T(k) [log p_T(k) -
  log p_S(k)] + (1 - P_T) [log(1 - P_T) - log(1 - P_S)], P the mass on the top k, p_T the
  teacher's stored (not renormalised) log-probabilities, temperature 1. Its minimum holds the
  teacher itself, so a student that is still the teacher gets no gradient; ``forward_kl``'s
  renormalised target instead pulls the student's mass off the tail onto the top k;
- ``ce`` (form 0), and every row or position without a teacher: the next-token cross-entropy of
  the label (the teacher's own answer token, or the document's text).

With ``temperature`` T both sides of a KL are softmax(logits / T) (no T^2 factor). Each row's
per-position loss is multiplied by its weight (``anchor.weight`` for ``+anchor``'s rows, 1 for the
rest), and the loss is the mean over those positions; or, when any row of the batch asks for it
(``distill.average=sequence``, prompt distillation's), the mean over rows of each row's own mean.
Rows marked as a penalty (``anchor.form=penalty``) are left out of that mean and averaged on their
own; the batch's loss is the sum of the two means (either is 0 where the batch has no position of
its kind), so a penalty's weight scales a term of its own and does not thin the method's steps.
"""

from __future__ import annotations

import torch


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_ids: torch.Tensor,
                      teacher_logprobs: torch.Tensor, distill_form: torch.Tensor,
                      distill_temperature: torch.Tensor | None = None,
                      distill_weight: torch.Tensor | None = None,
                      distill_sequence: torch.Tensor | None = None,
                      distill_penalty: torch.Tensor | None = None) -> torch.Tensor:
    """``logits`` (B, T, V) predict the next token; ``labels`` (B, T), -100 where no loss;
    ``teacher_ids`` / ``teacher_logprobs`` (B, T, k) at the label positions (id -1: no teacher);
    ``distill_form`` (B,): 0 ce, 1 forward_kl, 2 reverse_kl, 3 forward_kl_tail;
    ``distill_temperature`` (B,): forms 1 and 2 compare softmax(logits / T) with the teacher's
    top k at the same T (default 1; form 3 is at T = 1);
    ``distill_weight`` (B,): each row's per-position loss scaled by it (default 1);
    ``distill_sequence`` (B,) bool: if any is set, each row (with a position to learn) is averaged
    over its own positions first, then the rows are averaged (default: one mean over positions);
    ``distill_penalty`` (B,) bool: those rows' positions form a second mean, added.
    Returns the loss (a scalar)."""
    logits = logits[:, :-1].float()
    t = torch.ones(len(logits), device=logits.device) if distill_temperature is None else distill_temperature
    t = t.to(logits.device, torch.float32)[:, None, None]
    logp = torch.log_softmax(logits, dim=-1)
    lab = labels[:, 1:].to(logp.device)
    tid = teacher_ids[:, 1:].to(logp.device)
    t_logp = torch.log_softmax(teacher_logprobs[:, 1:].to(logp.device).float() / t, dim=-1)  # over the top k
    valid = lab != -100
    has_teacher = tid[..., 0] >= 0
    form = distill_form.to(logp.device)[:, None].expand_as(lab)
    ce = -logp.gather(-1, lab.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    s_logp = torch.log_softmax(logits / t, dim=-1).gather(-1, tid.clamp(min=0))
    forward = (t_logp.exp() * (t_logp - s_logp)).sum(-1)
    s_top = torch.log_softmax(s_logp, dim=-1)
    reverse = (s_top.exp() * (s_top - t_logp)).sum(-1)
    per = torch.where(has_teacher & (form == 1), forward, torch.where(has_teacher & (form == 2), reverse, ce))
    if bool((form == 3).any()):
        per = torch.where(has_teacher & (form == 3), _tail_kl(logp, tid, teacher_logprobs[:, 1:].to(logp.device)), per)
    if distill_weight is not None:
        per = per * distill_weight.to(per.device, torch.float32)[:, None]
    sequence = distill_sequence is not None and bool(distill_sequence.any())
    if distill_penalty is None or not bool(distill_penalty.any()):
        return _mean(per, valid, sequence)
    apart = distill_penalty.to(per.device)[:, None] & valid
    return _mean(per, valid & ~apart, sequence) + _mean(per, apart, False)


def _tail_kl(logp: torch.Tensor, tid: torch.Tensor, t_logp: torch.Tensor) -> torch.Tensor:
    """Form 3 at each position (B, T): ``logp`` (B, T, V) the student's log-softmax; ``tid`` /
    ``t_logp`` (B, T, k) the teacher's top-k ids and their log-probabilities over the whole
    vocabulary (rounded when stored, so their mass is capped just below 1)."""
    t_lp = t_logp.float().clamp(max=0.0)
    s_lp = logp.gather(-1, tid.clamp(min=0))
    top = (t_lp.exp() * (t_lp - s_lp)).sum(-1)
    eps = 1e-6
    t_rest = (1 - t_lp.exp().sum(-1)).clamp(min=eps)
    s_rest = (1 - s_lp.exp().sum(-1)).clamp(min=eps)
    return top + t_rest * (t_rest.log() - s_rest.log())


def _mean(per: torch.Tensor, valid: torch.Tensor, sequence: bool) -> torch.Tensor:
    """The mean of ``per`` (B, T) over ``valid`` positions, or (``sequence``) over the rows that
    have one of each row's own mean; 0 where no position is valid."""
    if not bool(valid.any()):
        return per.sum() * 0.0  # keeps the graph: a batch of penalty rows alone still steps
    if not sequence:
        return per[valid].mean()
    counts = valid.sum(-1)
    rows = counts > 0
    return (torch.where(valid, per, 0.0).sum(-1)[rows] / counts[rows]).mean()
