"""What the rep4d conformance test classes share: one model class per TestCase, the skips that hold for every rep4d
model (with their reasons) and the checks rep4d's models need in place of transformers' own; rep4d's own checks
of every model class come in from ``model_checks.py``.

A test file defines its tiny ``*ModelTester`` and a base ``class _XTestBase(Rep4dModelTestMixin)`` naming
``model_class`` and ``model_tester_class``; a model without a training loss sets ``no_loss_reason``.
"""

from __future__ import annotations

import torch
from conformance.model_checks import Rep4dModelChecksMixin
from torch import nn
from transformers_tests.test_modeling_common import ModelTesterMixin

VLM_VIDEO_FEATURES = (
    "transformers' get_video_features tests check the VLM contract (pixel_values_videos -> "
    "BaseModelOutputWithPooling); rep4d's get_video_features returns its (B, T, N, C) VideoFeaturesOutput"
)
# parameterized.expand names the output cases test_get_video_features_output_0/_1/_2 (return_dict True/False/None).
# (test_get_video_features_pooler_output passes without a check for a model outside the image-text-to-text mapping.)
VLM_VIDEO_FEATURES_TESTS = frozenset(
    {
        "test_get_video_features_output_0",
        "test_get_video_features_output_1",
        "test_get_video_features_output_2",
        "test_get_video_features_hidden_states",
        "test_get_video_features_attentions",
    }
)
TRAINING_TESTS = frozenset(
    {
        "test_training",
        "test_training_gradient_checkpointing",
        "test_training_gradient_checkpointing_use_reentrant_false",
        "test_training_gradient_checkpointing_use_reentrant_true",
    }
)
BASE_MODEL_NO_LOSS = "base model without a loss (transformers skips its own base models here by mapping name)"
STACKED_OVER_FRAMES = (
    "{family} runs frame by frame: hidden_states / attentions are the per-frame tensors stacked over time (B, T, ...) "
    "for the output, copies that are not on the path to the model output, so they hold no .grad"
)


class TinyModelTester:
    """Base of the tiny-config testers (as transformers' ``*ModelTester``): the class attributes are the sizes, a
    keyword argument overrides one; a subclass's ``__init__`` derives the rest (``seq_length``...) after this one."""

    batch_size = 2
    num_channels = 3
    is_training = True

    def __init__(self, parent, model_class, **sizes):
        self.parent = parent
        self.model_class = model_class
        for name, value in sizes.items():
            if not hasattr(self, name):
                raise TypeError(f"{type(self).__name__} has no size {name!r}")
            setattr(self, name, value)


class Rep4dModelTestMixin(Rep4dModelChecksMixin, ModelTesterMixin):
    """transformers' ModelTesterMixin for one rep4d model class, as VideoMAEModelTest, plus rep4d's own checks."""

    model_class: type | None = None
    model_tester_class: type | None = None
    test_resize_embeddings = False  # reason: a patch / tubelet projection or conv encoder, no token embeddings
    test_torch_exportable = False  # reason: not exercised by the stand-in ExportTesterMixin of the sdist
    no_loss_reason: str | None = None  # set for a model without a training loss: skips transformers' training tests
    runs_frame_by_frame: str | None = None  # the family name of a model whose per-frame outputs are stacked over time
    # Set for a model whose inputs transformers' eager-vs-SDPA tests cannot build: skips them (rep4d's
    # test_eager_and_sdpa_agree_on_every_output still compares the two on the tester's inputs).
    eager_sdpa_inputs_reason: str | None = None

    def setUp(self):
        name = self._testMethodName
        if name.startswith("test_eager_matches_sdpa_inference") and self.eager_sdpa_inputs_reason is not None:
            self.skipTest(self.eager_sdpa_inputs_reason)
        if name in VLM_VIDEO_FEATURES_TESTS and hasattr(self.model_class, "get_video_features"):
            self.skipTest(VLM_VIDEO_FEATURES)
        if name in TRAINING_TESTS and self.no_loss_reason is not None:
            self.skipTest(self.no_loss_reason)
        if name == "test_retain_grad_hidden_states_attentions" and self.runs_frame_by_frame is not None:
            self.skipTest(STACKED_OVER_FRAMES.format(family=self.runs_frame_by_frame))
        self.all_model_classes = (self.model_class,)
        self.model_tester = self.get_model_tester()

    def get_model_tester(self):
        return self.model_tester_class(self, model_class=self.model_class)

    def test_model_get_set_embeddings(self):
        # As VideoMAE's override: the input embedding is the patch projection / encoder, not an nn.Embedding.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), nn.Module)
            if model.base_model is not model:  # a task model's input embeddings are its base model's
                self.assertIs(model.get_input_embeddings(), model.base_model.get_input_embeddings())
            output = model.get_output_embeddings()
            self.assertTrue(output is None or isinstance(output, nn.Linear))


class BoolOutputsEquivalenceMixin:
    """transformers' test_model_outputs_equivalence compares every output with torch.allclose, which bool outputs
    (the point heads' ``occluded``, bool in every rep4d point head) do not support: the same check, exact for bool
    tensors. ``has_hidden_states = False`` leaves out the ``output_hidden_states`` call."""

    has_hidden_states = True

    def test_model_outputs_equivalence(self):
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()

        def check(tuple_object, dict_object):
            if isinstance(tuple_object, (list, tuple)):
                self.assertEqual(len(tuple_object), len(dict_object))
                for a, b in zip(tuple_object, dict_object):
                    check(a, b)
            elif isinstance(tuple_object, torch.Tensor):
                if tuple_object.dtype == torch.bool:
                    self.assertTrue(torch.equal(tuple_object, dict_object))
                else:
                    self.assertTrue(torch.allclose(tuple_object.nan_to_num(), dict_object.nan_to_num(), atol=1e-5))

        extras = [{}]
        if self.has_hidden_states:
            extras.append({"output_hidden_states": True})
        if self.has_attentions:
            extras.append({"output_attentions": True})
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            model.set_attn_implementation("eager")
            for extra in extras:
                with torch.no_grad():
                    tuple_output = model(**inputs_dict, return_dict=False, **extra)
                    dict_output = model(**inputs_dict, return_dict=True, **extra)
                self.assertIsInstance(tuple_output, tuple)
                check(tuple_output, dict_output.to_tuple())
