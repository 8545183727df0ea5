"""The one vocabulary of normalisation modes, each name meaning one layer:

* ``'batch'``: BatchNorm in training mode, normalising each batch with its own
  statistics (the official networks); it couples the samples of a batch;
* ``'group'``: GroupNorm over ``C`` channels in ``group_count(C)`` groups (the largest
  divisor of ``C`` not above 16: the official MetaNTK-NAS ``groupnorm16``; the few-shot
  DARTS space refuses channel counts where that is not ``min(16, C)``);
* ``'eval'``: BatchNorm in evaluation mode, normalising with its running statistics
  (fresh ones give ``y = γ x / sqrt(1 + eps) + β``: no normalisation at initialisation);
* ``'none'``: the identity.

Networks are built with :data:`NETWORK_NORMS`; kernels need samples that do not interact,
so a network's BatchNorm is replaced (``network_adapter.replace_batchnorm``) by one of
:data:`KERNEL_NORMS`. Plain names, no torch: settings and ``--help`` read them.
"""

__all__ = ["KERNEL_NORMS", "NETWORK_NORMS", "NORMS"]

NORMS = ("batch", "group", "eval", "none")
"""Every normalisation mode."""

NETWORK_NORMS = ("batch", "group", "none")
"""The modes a network is built with: NAS-Bench-201 and DARTS networks, ``metantk score --norm``."""

KERNEL_NORMS = ("group", "eval", "none")
"""The modes that keep samples independent, as kernels need: what BatchNorm may be replaced by."""
