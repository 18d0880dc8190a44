"""CE: plain cross-entropy fine-tuning of the encoder + head, the paper's "BERT" row.

It is `SelfMixTrainer` with method="ce": no warm-up, no selection used for training.
Its reports still carry the trainer's GMM split of the per-sample losses, but CE flags
nothing itself, so the harness shows no detection columns for it.
"""

from __future__ import annotations

from .base import TrainerMethod


class CE(TrainerMethod):
    name = "ce"
    summary = "plain cross-entropy fine-tuning (the paper's BERT baseline)"
    paper = "Devlin et al. 2019 (fine-tuning without any denoising)"
    flags = None

    def configure(self, config):
        return config.replace(method="ce")
