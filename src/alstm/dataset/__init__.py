"""Processors, the data handler (raw → infer → learn) and the datasets a model samples from."""

from alstm.dataset.dataset import DatasetH, TSDatasetH
from alstm.dataset.frame import Frame
from alstm.dataset.handler import DataHandler, build_processors
from alstm.dataset.processors import (
    PROCESSORS,
    Processor,
    load_processors,
    make_processor,
    register_processor,
    save_processors,
)
from alstm.dataset.samples import FlatSamples, SampleSet, WindowSamples

__all__ = [
    "PROCESSORS",
    "DataHandler",
    "DatasetH",
    "FlatSamples",
    "Frame",
    "Processor",
    "SampleSet",
    "TSDatasetH",
    "WindowSamples",
    "build_processors",
    "load_processors",
    "make_processor",
    "register_processor",
    "save_processors",
]
