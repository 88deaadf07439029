"""rep4d's own checks of every model class, run once per class by the conformance test classes (``common.py``'s
``Rep4dModelTestMixin`` mixes them in beside transformers' ``ModelTesterMixin``): save/load through the Auto classes,
eager vs SDPA on every output, gradient checkpointing, input errors, wrong-family folders, attention maps.

They reuse each family's tiny tester (``test_<family>_conformance.py``), so a new model class gets them by getting a
conformance test class. Family-specific behaviour (parity, streaming, presets...) stays in ``tests/test_<family>*.py``.
"""

from __future__ import annotations

import tempfile

import torch
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer

from rep4d.auto import REGISTRY
from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.configuration.configuration_rvm import RVMConfig

from testing_utils import randomized


def _tensor_fields(output) -> dict[str, torch.Tensor]:
    """The tensor fields of a ModelOutput (nested tuples such as ``hidden_states`` left out)."""
    return {name: value for name, value in output.items() if isinstance(value, torch.Tensor)}


def _attention_fields(output) -> dict[str, tuple]:
    """Every tuple of attention maps in a ModelOutput (``attentions``, ``cross_attentions``, ...)."""
    return {name: value for name, value in output.items() if name.endswith("attentions") and value is not None}


def registered_auto_classes(model_class: type, config_class: type) -> list[type]:
    """The transformers Auto classes that rep4d registers ``model_class`` with (``rep4d.auto.REGISTRY``)."""
    models = next(models for registered_config, models, _ in REGISTRY if registered_config is config_class)
    return [auto for auto, classes in models.items() if model_class in (classes if isinstance(classes, tuple)
                                                                        else (classes,))]


class Rep4dModelChecksMixin:
    """The checks every rep4d model class gets besides transformers' common tests, stricter than those where both
    exist: transformers' save/load test compares the first output within a tolerance and loads with the class itself,
    its eager-vs-SDPA test compares the last hidden state (not the task outputs, and not for the classes whose inputs
    it cannot build) and its gradient-checkpointing test compares which gradients are non-zero, not their values.

    Each check runs on the tiny model and fixed inputs of the class's tester (``prepare_config_and_inputs_for_common``
    plus ``_prepare_for_class``), so masks, initial noise and decoding offsets are the same on every call.
    """

    def _model_and_inputs(self, return_labels=False):
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        torch.manual_seed(0)
        # Perturbed parameters: a zero-initialised output layer would hide a difference in the layers below it.
        model = randomized(self.model_class(config))
        return model, self._prepare_for_class(inputs_dict, self.model_class, return_labels=return_labels)

    def test_save_load_round_trip_with_auto_classes(self):
        # Every Auto class registered for the model class (rep4d.auto) loads the saved folder as that class with no
        # missing or unexpected key and bit-identical outputs; AutoModel on a task model's folder gives its base
        # model, with the same video features.
        model, inputs = self._model_and_inputs()
        model.eval()
        with torch.no_grad():
            expected = _tensor_fields(model(**inputs))
        auto_classes = registered_auto_classes(self.model_class, type(model.config))
        loaders = [self.model_class.from_pretrained] + [auto.from_pretrained for auto in auto_classes]
        for auto in auto_classes:
            self.assertIs(type(auto.from_config(model.config)), self.model_class, auto)
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            self.assertIs(type(AutoConfig.from_pretrained(folder)), type(model.config))
            for load in loaders:
                loaded, info = load(folder, output_loading_info=True)
                self.assertIs(type(loaded), self.model_class, load)
                self.assertFalse(info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"], info)
                with torch.no_grad():
                    outputs = _tensor_fields(loaded.eval()(**inputs))
                self.assertEqual(outputs.keys(), expected.keys())
                for name, value in expected.items():
                    torch.testing.assert_close(outputs[name], value, rtol=0, atol=0, msg=name)
            base = model.base_model
            if base is not model and hasattr(base, "get_video_features") and AutoModel not in auto_classes:
                backbone = AutoModel.from_pretrained(folder).eval()
                self.assertIs(type(backbone), type(base))
                with torch.no_grad():
                    features = backbone.get_video_features(inputs["pixel_values"]).features
                    torch.testing.assert_close(
                        features, base.get_video_features(inputs["pixel_values"]).features, rtol=0, atol=0
                    )

    def test_eager_and_sdpa_agree_on_every_output(self):
        model, inputs = self._model_and_inputs(return_labels=True)
        model.eval()
        outputs = {}
        for implementation in ("eager", "sdpa"):
            model.set_attn_implementation(implementation)
            # The switch really happens, in the model and every sub-model (a readout's backbone).
            for module in model.modules():
                if isinstance(module, PreTrainedModel):
                    self.assertEqual(module.config._attn_implementation, implementation, type(module).__name__)
            with torch.no_grad():
                outputs[implementation] = _tensor_fields(model(**inputs))
        self.assertEqual(outputs["eager"].keys(), outputs["sdpa"].keys())
        for name, value in outputs["eager"].items():
            torch.testing.assert_close(outputs["sdpa"][name], value, rtol=1e-5, atol=1e-5, msg=name)

    def test_gradient_checkpointing_gives_the_same_gradients(self):
        # A model without a loss (base models, inference heads) backpropagates the mean square of its float outputs.
        model, inputs = self._model_and_inputs(return_labels=True)
        layers = [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]
        if not layers:
            self.skipTest("no layer stack to checkpoint (a single attention readout on given features)")
        model.train()

        def gradients() -> dict[str, torch.Tensor | None]:
            model.zero_grad(set_to_none=True)
            torch.manual_seed(0)
            outputs = model(**inputs)
            if self.no_loss_reason is None:
                loss = outputs.loss
            else:
                loss = sum(value.square().mean() for value in _tensor_fields(outputs).values() if value.requires_grad)
            loss.backward()
            return {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}

        plain = gradients()
        self.assertTrue(any(g is not None and g.abs().sum() > 0 for g in plain.values()))
        # The default, non-reentrant checkpointing: bit-identical gradients. (Reentrant checkpointing runs its first
        # forward without gradients, i.e. through the CPU inference fast paths: float-rounding differences.)
        model.activation_checkpointing_enable()
        self.assertTrue(all(layer.gradient_checkpointing for layer in layers))
        checkpointed = gradients()
        self.assertEqual({n for n, g in plain.items() if g is None}, {n for n, g in checkpointed.items() if g is None})
        for name, grad in plain.items():
            if grad is not None:
                torch.testing.assert_close(checkpointed[name], grad, rtol=0, atol=0, msg=name)

    def test_bad_pixel_values_give_one_line_value_errors(self):
        model, inputs = self._model_and_inputs()
        if model.main_input_name != "pixel_values":
            self.skipTest(f"main input {model.main_input_name!r}: features from a backbone, no video")
        # Each message names the expected layout and what was given.
        video = inputs["pixel_values"]
        layout = r"\(batch, frames, channels, height, width\)"
        frame_shape = r"\(" + ", ".join(map(str, video.shape[2:])) + r"\)"
        cases = [
            (video.to(torch.uint16), "must be a floating tensor .*uint16"),
            (video[0, 0].numpy(), f"{layout}.*ndarray"),
            (video[0, 0], f"{layout}.*got {frame_shape}"),
            (video[:0], "empty"),
        ]
        for bad, message in cases:
            with self.subTest(message), self.assertRaisesRegex(ValueError, message) as caught:
                model.eval()(**{**inputs, "pixel_values": bad})
            self.assertNotIn("\n", str(caught.exception))

    def test_a_folder_of_another_family_is_refused(self):
        # Before issue 13 a folder of another family failed deep inside a config check or loaded random weights.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        other = RVMConfig() if isinstance(config, FourDSConfig) else FourDSConfig()
        with tempfile.TemporaryDirectory() as folder:
            other.save_pretrained(folder)
            expected, found = config.model_type, other.model_type
            message = rf"^expected a \S+ config \(model_type '{expected}'\), got a '{found}' config"
            with self.assertRaisesRegex(ValueError, message) as caught:
                self.model_class.from_pretrained(folder)
        self.assertNotIn("\n", str(caught.exception))

    def test_attention_maps_are_distributions(self):
        # transformers' test_attention_outputs checks the number and shapes of the maps; these are the softmax rows.
        if not self.has_attentions:
            self.skipTest("the class sets has_attentions = False (no attention maps to return)")
        model, inputs = self._model_and_inputs()
        model.eval().set_attn_implementation("eager")
        with torch.no_grad():
            fields = _attention_fields(model(**inputs, output_attentions=True))
        self.assertTrue(fields)
        for name, maps in fields.items():
            for index, attention in enumerate(maps):
                torch.testing.assert_close(
                    attention.sum(-1), torch.ones_like(attention[..., 0]), rtol=0, atol=1e-5, msg=f"{name}[{index}]"
                )
