"""SelfMix Studio core: data, noise, model, losses, selection, trainer, metrics, store.

Imports no Streamlit. The names below are the public API; everything else is internal.
"""

from .config import LossWeights, ModelConfig, ReferenceDeviations, SelectionConfig, TrainConfig
from .data import DataValidationError, TextDataset, dataset_from_frame, load_dataset, read_table
from .noise import NoisyLabels, inject_noise, noisy_dataset
from .reports import DetectionMetrics, EpochReport, GMMParams, StepProgress
from .selection import Selection, select

__version__ = "0.1.0"

__all__ = [
    "DataValidationError", "DetectionMetrics", "EpochReport", "GMMParams", "LossWeights", "ModelConfig",
    "NoisyLabels", "ReferenceDeviations", "Selection", "SelectionConfig", "StepProgress", "TextDataset",
    "TrainConfig", "dataset_from_frame", "inject_noise", "load_dataset", "noisy_dataset", "read_table", "select",
]
