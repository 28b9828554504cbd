"""Training: the GAN loop of Eq. 11-12 (`gan.py`) with its data order (`epochs.py`), run state (`run_state.py`) and
non-finite rollback (`rollback.py`), resumable checkpoints (`checkpoint.py`), DDP (`distributed.py`)."""

from egsynth.training.checkpoint import (
    CheckpointError,
    CheckpointParamsMismatch,
    load_checkpoint,
    save_checkpoint,
)
from egsynth.training.distributed import DistributedContext, destroy_distributed, init_distributed
from egsynth.training.epochs import EpochData
from egsynth.training.gan import TrainResult, train_gan
from egsynth.training.rollback import NonFiniteLossError

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
