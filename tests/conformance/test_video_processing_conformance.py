"""transformers' common video-processor tests for the 4DS, RVM and MooG video processors (as VideoMAE's)."""

from __future__ import annotations

import unittest

from transformers_tests.test_video_processing_common import VideoProcessingTestMixin, prepare_video_inputs

from rep4d.processing.video_processing_fourds import FourDSVideoProcessor
from rep4d.processing.video_processing_moog import MooGVideoProcessor
from rep4d.processing.video_processing_rvm import RVMVideoProcessor


class Rep4dVideoProcessingTester:
    """Small random videos (8 frames of 30..80 pixels): shorter side to 20, centre crop 18x18 (VideoMAE's tester
    values, which ``test_video_processor_from_dict_with_kwargs`` expects), no normalisation."""

    def __init__(self, parent, batch_size=5, num_frames=8, num_channels=3, min_resolution=30, max_resolution=80,
                 size=None, crop_size=None, sample_num_frames=None):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.num_channels = num_channels
        self.min_resolution = min_resolution
        self.max_resolution = max_resolution
        self.size = size if size is not None else {"shortest_edge": 20}
        self.crop_size = crop_size if crop_size is not None else {"height": 18, "width": 18}
        self.sample_num_frames = sample_num_frames  # the processor's num_frames (None: every frame)

    def prepare_video_processor_dict(self) -> dict:
        values = {"do_resize": True, "size": self.size, "do_center_crop": True, "crop_size": self.crop_size}
        if self.sample_num_frames is not None:
            values["num_frames"] = self.sample_num_frames
        return values

    def expected_output_video_shape(self, videos):
        return self.num_frames, self.num_channels, self.crop_size["height"], self.crop_size["width"]

    def prepare_video_inputs(self, equal_resolution=False, return_tensors="pil"):
        return prepare_video_inputs(
            batch_size=self.batch_size,
            num_frames=self.num_frames,
            num_channels=self.num_channels,
            min_resolution=self.min_resolution,
            max_resolution=self.max_resolution,
            equal_resolution=equal_resolution,
            return_tensors=return_tensors,
        )


class _Rep4dVideoProcessingTestBase(VideoProcessingTestMixin):
    input_name = "pixel_values"
    sample_num_frames = None

    def setUp(self):
        super().setUp()
        self.video_processor_tester = Rep4dVideoProcessingTester(self, sample_num_frames=self.sample_num_frames)

    @property
    def video_processor_dict(self):
        return self.video_processor_tester.prepare_video_processor_dict()


class FourDSVideoProcessingTest(_Rep4dVideoProcessingTestBase, unittest.TestCase):
    fast_video_processing_class = FourDSVideoProcessor
    sample_num_frames = 8  # the 4DS default samples 16 frames; the test videos have 8


class RVMVideoProcessingTest(_Rep4dVideoProcessingTestBase, unittest.TestCase):
    fast_video_processing_class = RVMVideoProcessor


class MooGVideoProcessingTest(_Rep4dVideoProcessingTestBase, unittest.TestCase):
    fast_video_processing_class = MooGVideoProcessor
