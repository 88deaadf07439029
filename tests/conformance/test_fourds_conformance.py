"""transformers' common model tests for the 4DS family, with tiny configs (as VideoMAEModelTest)."""

from __future__ import annotations

import unittest

import torch
from conformance.common import BASE_MODEL_NO_LOSS, Rep4dModelTestMixin, TinyModelTester
from transformers_tests.test_modeling_common import floats_tensor

from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.modeling.modeling_fourds import FourDSForDepthEstimation, FourDSForPreTraining, FourDSModel


class FourDSModelTester(TinyModelTester):
    """Tiny 4DS: 4 frames of 8x8, 2x4x4 tubelets (2x2x2 = 8 tokens), 2 blocks; ``readout_depth`` 1.0 reads block 1
    of 2 (the reference list ``[tokens, tokens, out_0]``), so the depth model leaves one block out."""

    num_frames = 4
    image_size = 8
    tubelet_size = (2, 4, 4)
    hidden_size = 32
    num_hidden_layers = 2
    num_attention_heads = 4
    intermediate_size = 37
    mask_ratio = 0.5

    def __init__(self, parent, model_class=FourDSModel, **sizes):
        super().__init__(parent, model_class, **sizes)
        self.config_num_hidden_layers = self.num_hidden_layers
        config = self.get_config()
        self.num_tokens = config.num_tokens
        self.seq_length = self.num_tokens
        if model_class is FourDSForPreTraining:
            # The encoder blocks see the visible tubelets only (as ViTMAE's tester): hidden_states[0] and the first
            # attention maps are over those.
            self.num_masked = int(round(self.num_tokens * self.mask_ratio))
            self.seq_length = self.num_tokens - self.num_masked
        if model_class is FourDSForDepthEstimation:
            # The depth model holds (and runs) the blocks up to its readout layer only.
            self.num_hidden_layers = FourDSModel(config).readout_hidden_state_index
            self.expected_num_hidden_layers = self.num_hidden_layers + 1

    def get_config(self) -> FourDSConfig:
        return FourDSConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.config_num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            tubelet_size=list(self.tubelet_size),
            image_size=[self.image_size, self.image_size],
            num_frames=self.num_frames,
            num_channels=self.num_channels,
            readout_depth=1.0,
            readout_num_params=32,
            readout_num_heads=4,
            readout_decoding_patch_size=[2, 4, 4],
            decoder_num_layers=1,
            decoder_patch_size=[2, 4, 4],
            mask_ratio=self.mask_ratio,
        )

    def prepare_config_and_inputs(self):
        pixel_values = floats_tensor(
            [self.batch_size, self.num_frames, self.num_channels, self.image_size, self.image_size]
        )
        return self.get_config(), pixel_values

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values = self.prepare_config_and_inputs()
        inputs_dict = {"pixel_values": pixel_values}
        if self.model_class is FourDSForPreTraining:
            # A fixed mask (as ViTMAE's tester passes fixed noise) so two calls see the same tubelets.
            generator = torch.Generator().manual_seed(0)
            order = torch.rand(self.batch_size, self.num_tokens, generator=generator).argsort(1).argsort(1)
            inputs_dict["mask"] = order < self.num_masked
        return config, inputs_dict


class _FourDSTestBase(Rep4dModelTestMixin):
    model_class = FourDSModel
    model_tester_class = FourDSModelTester
    test_pruning = False
    has_attentions = True

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is FourDSForDepthEstimation:
            # Derived from the inputs, so repeated calls (tuple vs dict outputs) get the same labels.
            inputs_dict["labels"] = inputs_dict["pixel_values"].mean(dim=2) + 0.5
        return inputs_dict


class FourDSModelTest(_FourDSTestBase, unittest.TestCase):
    model_class = FourDSModel
    no_loss_reason = BASE_MODEL_NO_LOSS


class FourDSForDepthEstimationTest(_FourDSTestBase, unittest.TestCase):
    model_class = FourDSForDepthEstimation


class FourDSForPreTrainingTest(_FourDSTestBase, unittest.TestCase):
    model_class = FourDSForPreTraining
    # As ViTMAE: these tests pass pixel_values only, and every forward pass draws a new random mask.
    eager_sdpa_inputs_reason = "random tubelet mask per forward pass: eager and SDPA runs see different tokens"
