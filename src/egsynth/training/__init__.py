"""Training: the GAN loop of Eq. 11-12 (`gan.py`), resumable checkpoints (`checkpoint.py`), DDP (`distributed.py`)."""

from egsynth.training.checkpoint import (
    CheckpointError,
    CheckpointParamsMismatch,
    load_checkpoint,
    save_checkpoint,
)
from egsynth.training.distributed import DistributedContext, destroy_distributed, init_distributed
from egsynth.training.gan import EpochData, NonFiniteLossError, TrainResult, train_gan

__all__ = [
    "CheckpointError",
    "CheckpointParamsMismatch",
    "DistributedContext",
    "EpochData",
    "NonFiniteLossError",
    "TrainResult",
    "destroy_distributed",
    "init_distributed",
    "load_checkpoint",
    "save_checkpoint",
    "train_gan",
]
