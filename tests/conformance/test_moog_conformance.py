"""transformers' common model tests for the MooG family, with tiny configs (as VideoMAEModelTest).

MooG maps onto transformers' conventions as follows (see ``MooGModelOutput``): ``num_hidden_layers`` is the number of
predictor + corrector layers, ``hidden_size`` the token width D, ``seq_length`` the number of state tokens K;
``hidden_states`` are (B, T, K, D) (the state entering the predictor, then every layer), ``attentions`` the
(B, T, heads, K, K) self-attention of every layer. The initial state is random noise: the tester passes it
(``initial_noise``) so that two calls of a model agree, as ViTMAE's tester passes its mask noise.
"""

from __future__ import annotations

import unittest

import torch
from conformance.common import BoolOutputsEquivalenceMixin, Rep4dModelTestMixin, TinyModelTester
from transformers_tests.test_modeling_common import floats_tensor

from rep4d.configuration.configuration_moog import MooGConfig
from rep4d.modeling.modeling_moog import (
    MooGForBoxTracking,
    MooGForDepthEstimation,
    MooGForNextFramePrediction,
    MooGForPointTracking,
    MooGModel,
    MooGTrackingHeadModel,
)


class MooGModelTester(TinyModelTester):
    """Tiny MooG: 2 frames of 16x16, a 4-conv encoder (4x4 tokens), K = 6 state tokens of width 16, one predictor
    and one corrector layer with 2 heads; heads read 2-frame clips."""

    num_frames = 2
    image_size = 16
    hidden_size = 16
    num_tokens = 6
    num_attention_heads = 2
    num_hidden_layers = 2  # 1 predictor + 1 corrector layer
    num_queries = 3
    tracking_head = "point"

    def __init__(self, parent, model_class=MooGModel, **sizes):
        super().__init__(parent, model_class, **sizes)
        self.seq_length = self.num_tokens

    def get_config(self) -> MooGConfig:
        heads, frames = self.num_attention_heads, self.num_frames
        return MooGConfig(
            image_size=[self.image_size, self.image_size],
            num_frames=frames,
            num_channels=self.num_channels,
            conv_features=[4, 8, 8, 8],
            conv_strides=[2, 1, 2, 1],
            enc_fourier_bases=2,
            encoder_hidden_size=8,
            encoder_output_size=16,
            num_tokens=self.num_tokens,
            token_size=self.hidden_size,
            predictor_qkv_size=16, predictor_num_heads=heads, predictor_mlp_size=32, predictor_num_layers=1,
            corrector_qkv_size=16, corrector_num_heads=heads, corrector_mlp_size=32, corrector_num_layers=1,
            decoder_qkv_size=8, decoder_num_heads=heads, decoder_mlp_size=16, decoder_num_layers=1,
            dec_fourier_bases=2,
            train_subsample_factor=4,
            readout_num_frames=frames,
            readout_fourier_bases=2,
            point_readout_num_params=8, point_readout_num_heads=2, point_readout_mlp_size=16,
            point_readout_query_mlp_size=8, point_readout_temporal_tile_size=2, point_readout_frames_per_query=1,
            box_readout_num_params=8, box_readout_num_heads=2, box_readout_mlp_size=16,
            box_readout_query_mlp_size=8, box_readout_temporal_tile_size=1, box_readout_frames_per_query=frames,
            depth_readout_qkv_size=8, depth_readout_num_heads=heads, depth_readout_mlp_size=16,
            depth_readout_num_layers=1,
            tracking_head=self.tracking_head,
        )  # fmt: skip

    def prepare_config_and_inputs_for_common(self):
        batch, frames, size = self.batch_size, self.num_frames, self.image_size
        noise = floats_tensor([batch, self.num_tokens, self.hidden_size])
        if self.model_class is MooGTrackingHeadModel:
            dim = 2 if self.tracking_head == "point" else 4
            inputs_dict = {
                "features": floats_tensor([batch, frames, self.num_tokens, self.hidden_size]),
                "queries": floats_tensor([batch, self.num_queries, dim]),
            }
            return self.get_config(), inputs_dict
        inputs_dict = {
            "pixel_values": floats_tensor([batch, frames, self.num_channels, size, size]),
            "initial_noise": noise,
        }
        if self.model_class is MooGForPointTracking:
            inputs_dict["query_points"] = floats_tensor([batch, self.num_queries, 2])
        elif self.model_class is MooGForBoxTracking:
            boxes = floats_tensor([batch, self.num_queries, 2]) * 0.5
            inputs_dict["query_boxes"] = torch.cat([boxes, boxes + 0.4], dim=-1)
        elif self.model_class is MooGForDepthEstimation:
            inputs_dict["labels"] = 0.5 + floats_tensor([batch, frames, size, size])
        elif self.model_class is MooGForNextFramePrediction:
            # Training mode decodes at random pixel offsets: fix them so two calls agree.
            inputs_dict["offsets"] = torch.zeros(batch, frames, 2, dtype=torch.long)
        return self.get_config(), inputs_dict


_NO_LOSS = "the released MooG tracking heads have no training loss (inference heads converted from the checkpoints)"


class _MooGTestBase(BoolOutputsEquivalenceMixin, Rep4dModelTestMixin):
    model_class = MooGModel
    tracking_head = "point"
    runs_frame_by_frame = "MooG (recurrent over frames)"
    # Inputs besides the main one that tests building their own inputs (eager vs SDPA) pass: the initial-state noise
    # (else the two calls start from different random states) and the heads' queries / targets.
    additional_model_inputs = ["initial_noise", "query_points", "query_boxes", "labels", "offsets", "queries"]

    def get_model_tester(self):
        return MooGModelTester(self, model_class=self.model_class, tracking_head=self.tracking_head)


class MooGModelTest(_MooGTestBase, unittest.TestCase):
    # MooGConfig's ConfigTester run: tests/conformance/test_config_conformance.py.
    model_class = MooGModel
    no_loss_reason = _NO_LOSS


class MooGForNextFramePredictionTest(_MooGTestBase, unittest.TestCase):
    model_class = MooGForNextFramePrediction


class MooGForPointTrackingTest(_MooGTestBase, unittest.TestCase):
    model_class = MooGForPointTracking
    no_loss_reason = _NO_LOSS


class MooGForBoxTrackingTest(_MooGTestBase, unittest.TestCase):
    model_class = MooGForBoxTracking
    no_loss_reason = _NO_LOSS
    tracking_head = "box"


class MooGForDepthEstimationTest(_MooGTestBase, unittest.TestCase):
    model_class = MooGForDepthEstimation


_HEAD_ONLY = (
    "MooGTrackingHeadModel reads given backbone features through one attention readout: it has no layer stack, "
    "hence no hidden states"
)


class MooGTrackingHeadModelTest(_MooGTestBase, unittest.TestCase):
    model_class = MooGTrackingHeadModel
    no_loss_reason = _NO_LOSS
    has_attentions = False  # reason: see _HEAD_ONLY
    has_hidden_states = False  # reason: see _HEAD_ONLY
    runs_frame_by_frame = None  # a head on given features: its skip of test_retain_grad_... is _HEAD_ONLY

    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = self.model_class(config)
        self.assertIs(model.get_input_embeddings(), model.readout.query_embedding)
        self.assertIsNone(model.get_output_embeddings())

    @unittest.skip(reason=_HEAD_ONLY)
    def test_hidden_states_output(self):
        pass

    @unittest.skip(reason=_HEAD_ONLY)
    def test_retain_grad_hidden_states_attentions(self):
        pass

    @unittest.skip(reason="a stand-alone head on given features: there is no base model to save under the prefix")
    def test_correct_missing_keys(self):
        pass


class MooGBoxTrackingHeadModelTest(MooGTrackingHeadModelTest):
    tracking_head = "box"
