"""transformers' common model tests for the attention-readout heads (every Readout* class) on a tiny 4DS backbone.

A readout's ``hidden_states`` / ``attentions`` are its backbone's, from the one backbone pass that gives the features.
ReadoutConfig's ConfigTester run is in tests/conformance/test_config_conformance.py.
"""

from __future__ import annotations

import unittest

import torch
from conformance.common import BoolOutputsEquivalenceMixin, Rep4dModelTestMixin, TinyModelTester
from torch import nn
from transformers_tests.test_modeling_common import floats_tensor

from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.configuration.configuration_readout import ReadoutConfig
from rep4d.modeling.backbone_adapters import hidden_state_index
from rep4d.modeling.modeling_readout import (
    ReadoutForBoxTracking,
    ReadoutForCameraPose,
    ReadoutForDepthEstimation,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
)


class ReadoutModelTester(TinyModelTester):
    """A tiny 4DS (4 frames of 8x8, 2x4x4 tubelets: 8 tokens, 3 blocks of width 32, of which the readout holds the
    one below its readout layer) under a 16-wide readout, trained end to end."""

    num_frames = 4
    image_size = 8
    hidden_size = 32
    backbone_layers = 3
    num_attention_heads = 4
    num_queries = 3

    def __init__(self, parent, model_class=ReadoutForDepthEstimation, **sizes):
        super().__init__(parent, model_class, **sizes)
        # The readout reads the default feature layer (readout_depth 0.95: hidden state 1 of 3 blocks) and holds and
        # runs only the blocks up to it (issue 13, bug 3: blocks it owned above it got no gradient), so its
        # hidden_states / attentions are those of that one block.
        self.num_hidden_layers = hidden_state_index(self.backbone_layers, FourDSConfig().readout_depth)
        self.seq_length = (self.num_frames // 2) * (self.image_size // 4) ** 2

    def get_config(self) -> ReadoutConfig:
        backbone = FourDSConfig(
            hidden_size=self.hidden_size, num_hidden_layers=self.backbone_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=37, tubelet_size=[2, 4, 4],
            image_size=[self.image_size, self.image_size], num_frames=self.num_frames,
        )  # fmt: skip
        return ReadoutConfig(
            task=self.model_class.task,
            backbone_config=backbone,
            readout_num_params=16,
            readout_num_heads=2,
            readout_mlp_ratio=2,
            decoding_patch_size=[2, 4, 4],
            num_fourier_bands=2,
            num_labels=3,
            # End-to-end mode, so that the training and gradient tests reach the backbone too (a frozen backbone
            # runs under no_grad: its hidden states carry no gradient).
            freeze_backbone=False,
        )

    def prepare_config_and_inputs_for_common(self):
        batch, frames, size, queries = self.batch_size, self.num_frames, self.image_size, self.num_queries
        inputs_dict = {"pixel_values": floats_tensor([batch, frames, self.num_channels, size, size])}
        task = self.model_class.task
        if task == "depth":
            inputs_dict["depth"] = 0.5 + floats_tensor([batch, frames, size, size])
        elif task == "points":
            times = torch.zeros(batch, queries, 1)
            inputs_dict["query_points"] = torch.cat([times, floats_tensor([batch, queries, 2], scale=size)], dim=-1)
            inputs_dict["tracks"] = floats_tensor([batch, queries, frames, 2], scale=size)
            inputs_dict["occluded"] = torch.zeros(batch, queries, frames, dtype=torch.bool)
        elif task == "boxes":
            corner = floats_tensor([batch, queries, 2], scale=0.5)
            inputs_dict["query_boxes"] = torch.cat([corner, corner + 0.4], dim=-1)
            moving = corner[:, :, None] + floats_tensor([batch, queries, frames, 2], scale=0.1)
            inputs_dict["boxes"] = torch.cat([moving, moving + 0.4], dim=-1)
        elif task == "pose":
            angles = floats_tensor([batch])
            cos, sin, zero, one = angles.cos(), angles.sin(), torch.zeros(batch), torch.ones(batch)
            rows = [
                torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1), torch.stack([zero, zero, one], -1)
            ]
            inputs_dict["camera_rotation"] = torch.stack(rows, dim=-2)
            inputs_dict["camera_translation"] = floats_tensor([batch, 3])
        else:
            inputs_dict["labels"] = torch.arange(batch) % 3
        return self.get_config(), inputs_dict


class _ReadoutTestBase(BoolOutputsEquivalenceMixin, Rep4dModelTestMixin):
    model_class = ReadoutForDepthEstimation
    batch_size = 2
    # The queries a head needs, for the tests that build their own inputs (eager vs SDPA).
    additional_model_inputs = ["query_points", "query_boxes"]
    _is_composite = True  # ReadoutConfig holds the backbone's config as a sub-config (backbone_config)

    def get_model_tester(self):
        return ReadoutModelTester(self, model_class=self.model_class, batch_size=self.batch_size)

    def test_model_get_set_embeddings(self):
        # As VideoMAE's override: the input embedding is the backbone's tubelet projection, not an nn.Embedding.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = self.model_class(config)
        self.assertIsInstance(model.get_input_embeddings(), nn.Module)
        self.assertIs(model.get_input_embeddings(), model.backbone.model.get_input_embeddings())
        self.assertIsNone(model.get_output_embeddings())

    @unittest.skip(
        reason="a readout's config is composite: its base model (the backbone) saves a backbone config.json, not a "
        "ReadoutConfig, so a readout cannot be loaded from the base model's folder (the test's premise)"
    )
    def test_correct_missing_keys(self):
        pass


class ReadoutForDepthEstimationTest(_ReadoutTestBase, unittest.TestCase):
    model_class = ReadoutForDepthEstimation


class ReadoutForPointTrackingTest(_ReadoutTestBase, unittest.TestCase):
    model_class = ReadoutForPointTracking


class ReadoutForBoxTrackingTest(_ReadoutTestBase, unittest.TestCase):
    model_class = ReadoutForBoxTracking
    # The eager-vs-SDPA test runs a batch of 7 and pads smaller inputs with uniform noise, which is no valid box
    # (ymin <= ymax): give it 7 valid boxes.
    batch_size = 7


class ReadoutForCameraPoseTest(_ReadoutTestBase, unittest.TestCase):
    model_class = ReadoutForCameraPose


class ReadoutForVideoClassificationTest(_ReadoutTestBase, unittest.TestCase):
    model_class = ReadoutForVideoClassification
