"""transformers' common model tests for the RVM family, with tiny configs (as VideoMAEModelTest)."""

from __future__ import annotations

import unittest

import torch
from conformance.common import BASE_MODEL_NO_LOSS, Rep4dModelTestMixin, TinyModelTester
from transformers_tests.test_modeling_common import floats_tensor

from rep4d.configuration.configuration_rvm import RVMConfig
from rep4d.modeling.modeling_rvm import RVMForMaskedReconstruction, RVMModel


class RVMModelTester(TinyModelTester):
    """Tiny RVM: 3 source frames (2 targets) of 8x8, 4x4 patches (1 CLS + 4 patch tokens), 2 ViT blocks."""

    num_frames = 3
    num_target_frames = 2
    image_size = 8
    patch_size = 4
    hidden_size = 32
    num_hidden_layers = 2
    num_attention_heads = 4
    intermediate_size = 37
    mask_ratio = 0.5

    def __init__(self, parent, model_class=RVMModel, **sizes):
        super().__init__(parent, model_class, **sizes)
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.seq_length = 1 + self.num_patches  # CLS + patches of one frame

    def get_config(self) -> RVMConfig:
        return RVMConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            patch_size=self.patch_size,
            image_size=[self.image_size, self.image_size],
            base_token_shape=[2, 2],
            num_channels=self.num_channels,
            rnn_num_layers=1,
            rnn_num_attention_heads=4,
            rnn_intermediate_size=37,
            decoder_hidden_size=16,
            decoder_num_layers=1,
            decoder_num_attention_heads=4,
            decoder_intermediate_size=24,
            num_delta_classes=8,
            mask_ratio=self.mask_ratio,
        )

    def prepare_config_and_inputs_for_common(self):
        size = [self.num_channels, self.image_size, self.image_size]
        inputs_dict = {"pixel_values": floats_tensor([self.batch_size, self.num_frames, *size])}
        if self.model_class is RVMForMaskedReconstruction:
            inputs_dict["target_pixel_values"] = floats_tensor([self.batch_size, self.num_target_frames, *size])
            inputs_dict["target_deltas"] = torch.arange(1, self.num_target_frames + 1).repeat(self.batch_size, 1)
            # Fixed masks (as ViTMAE's tester passes fixed noise) so two calls hide the same patches.
            generator = torch.Generator().manual_seed(0)
            noise = torch.rand(self.batch_size, self.num_target_frames, self.num_patches, generator=generator)
            inputs_dict["ids_shuffle"] = noise.argsort(-1)
        return self.get_config(), inputs_dict


class _RVMTestBase(Rep4dModelTestMixin):
    model_class = RVMModel
    model_tester_class = RVMModelTester
    runs_frame_by_frame = "RVM (its ViT)"


class RVMModelTest(_RVMTestBase, unittest.TestCase):
    model_class = RVMModel
    no_loss_reason = BASE_MODEL_NO_LOSS


class RVMForMaskedReconstructionTest(_RVMTestBase, unittest.TestCase):
    model_class = RVMForMaskedReconstruction
    # These tests call the model with pixel_values only; masked reconstruction needs its target frames.
    eager_sdpa_inputs_reason = "needs target_pixel_values (and fixed masks), which these tests do not pass"
