"""transformers' ConfigTester on every rep4d config (4DS, RVM, MooG, readouts)."""

from __future__ import annotations

import unittest

from transformers_tests.test_configuration_common import ConfigTester

from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.configuration.configuration_moog import MooGConfig
from rep4d.configuration.configuration_readout import ReadoutConfig
from rep4d.configuration.configuration_rvm import RVMConfig


class FourDSConfigTest(unittest.TestCase):
    def test_config(self):
        ConfigTester(self, config_class=FourDSConfig, has_text_modality=False, hidden_size=36).run_common_tests()


class RVMConfigTest(unittest.TestCase):
    def test_config(self):
        ConfigTester(self, config_class=RVMConfig, has_text_modality=False, hidden_size=36).run_common_tests()


class MooGConfigTest(unittest.TestCase):
    def test_config(self):
        # hidden_size / num_attention_heads / num_hidden_layers are the attribute_map names of token_size and the
        # corrector's heads and layers.
        ConfigTester(self, config_class=MooGConfig, has_text_modality=False, token_size=64).run_common_tests()

    def test_attribute_map(self):
        config = MooGConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=1)
        self.assertEqual((config.token_size, config.corrector_num_heads, config.corrector_num_layers), (64, 4, 1))
        self.assertEqual((config.hidden_size, config.num_attention_heads, config.num_hidden_layers), (64, 4, 1))


class ReadoutConfigTest(unittest.TestCase):
    def test_config(self):
        # A composite config (the default backbone_config, a 4DS-B, is a sub-config): transformers' tester skips the
        # top-level common properties for composite configs. The inputs are plain values, as the tester compares
        # each one with its JSON form.
        ConfigTester(
            self, config_class=ReadoutConfig, has_text_modality=False, common_properties=[], task="depth",
            readout_num_params=64, readout_num_heads=4,
        ).run_common_tests()

    def test_backbone_sub_config_round_trip(self):
        backbone = FourDSConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, tubelet_size=[2, 4, 4],
            image_size=[8, 8], num_frames=4,
        )
        config = ReadoutConfig.from_dict(ReadoutConfig(task="points", backbone_config=backbone).to_dict())
        self.assertIsInstance(config.backbone_config, FourDSConfig)
        self.assertEqual(config.backbone_config.to_dict(), backbone.to_dict())
