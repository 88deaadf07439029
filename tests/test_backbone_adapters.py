"""One feature API for every backbone: ``get_video_features`` of the rep4d models, the backbone adapters (rep4d and
transformers' own video / image backbones, tiny random configs of the real classes, offline) and
``dense_feature_extractor`` (grid features of a whole video, streamed)."""

from __future__ import annotations

import pytest
import torch

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig, RVMConfig
from rep4d.modeling import FourDSModel, MooGModel, RVMModel
from rep4d.modeling.outputs import VideoFeaturesOutput

from testing_utils import tiny_moog_config

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


def tiny_fourds(**overrides) -> FourDSConfig:
    values = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                  tubelet_size=[2, 8, 8], image_size=[16, 24], num_frames=4)  # fmt: skip
    values.update(overrides)
    return FourDSConfig(**values)


def tiny_rvm(**overrides) -> RVMConfig:
    values = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8,
                  image_size=[16, 24], base_token_shape=[2, 3], rnn_num_layers=1, rnn_num_attention_heads=2,
                  rnn_intermediate_size=32, decoder_hidden_size=16, decoder_num_layers=1,
                  decoder_num_attention_heads=2, decoder_intermediate_size=32)  # fmt: skip
    values.update(overrides)
    return RVMConfig(**values)


def video(batch=2, frames=4, height=16, width=24, seed=0) -> torch.Tensor:
    return torch.rand(batch, frames, 3, height, width, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------------------------
# get_video_features


@torch.no_grad()
def test_fourds_get_video_features_are_the_readout_features_on_the_grid():
    torch.manual_seed(0)
    model = FourDSModel(tiny_fourds()).eval()
    pixel_values = video()
    out = model.get_video_features(pixel_values)
    assert isinstance(out, VideoFeaturesOutput)
    assert out.features.shape == (2, 4, 2 * 3, 16) and out.grid_size == (2, 3) and out.final_state is None
    torch.testing.assert_close(out.features, model(pixel_values).readout_features)
    # An explicit layer reads that hidden state, resampled in time to the input frames (t = 2 tubelet frames -> 4).
    hidden = model(pixel_values, output_hidden_states=True).hidden_states
    layer = model.get_video_features(pixel_values, feature_layer=2).features
    torch.testing.assert_close(layer, model.resample_readout_features(hidden[2], (2, 2, 3), 4))
    assert not torch.allclose(layer, model.get_video_features(pixel_values, feature_layer=1).features)
    with pytest.raises(ValueError, match="feature_layer must index the 4 hidden states"):
        model.get_video_features(pixel_values, feature_layer=7)
    with pytest.raises(ValueError, match="channels"):
        model.get_video_features(pixel_values[:, :, :2])


@torch.no_grad()
def test_rvm_get_video_features_drop_cls_and_stream_with_final_state():
    torch.manual_seed(0)
    model = RVMModel(tiny_rvm()).eval()
    pixel_values = video(frames=5)
    out = model.get_video_features(pixel_values)
    assert out.features.shape == (2, 5, 6, 16) and out.grid_size == (2, 3)
    assert out.final_state.shape == (2, 7, 16)
    full = model(pixel_values)
    torch.testing.assert_close(out.features, full.last_hidden_state[:, :, 1:])
    torch.testing.assert_close(out.final_state, full.state if "state" in full else full.final_state)
    first = model.get_video_features(pixel_values[:, :2])
    rest = model.get_video_features(pixel_values[:, 2:], state=first.final_state)
    torch.testing.assert_close(torch.cat([first.features, rest.features], dim=1), out.features)
    # One frame (B, C, H, W) is a clip of one frame.
    assert model.get_video_features(pixel_values[:, 0]).features.shape == (2, 1, 6, 16)


@torch.no_grad()
def test_moog_get_video_features_latent_states_and_grid_encoder_tokens():
    torch.manual_seed(0)
    model = MooGModel(tiny_moog_config()).eval()
    pixel_values = video(frames=4, width=16)
    out = model.get_video_features(pixel_values)
    assert out.features.shape == (2, 4, 6, 16) and out.grid_size is None and out.final_state.shape == (2, 6, 16)
    # Deterministic by default (one initial noise from a generator seeded with 0, shared by the batch) and equal to
    # forward's with that noise.
    torch.testing.assert_close(model.get_video_features(pixel_values).features, out.features)
    noise = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(0)).expand(2, -1, -1)
    reference = model(pixel_values, initial_noise=noise)
    torch.testing.assert_close(out.features, reference.features)
    torch.testing.assert_close(out.final_state, reference.final_state)
    rest = model.get_video_features(pixel_values[:, 2:], state=model.get_video_features(pixel_values[:, :2]).final_state)
    torch.testing.assert_close(rest.features, out.features[:, 2:])
    other = model.get_video_features(pixel_values, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(other.features, out.features)

    grid = model.get_video_features(pixel_values, grid_features=True)
    h, w = model.encoder.feature_map_size(16, 16)
    assert grid.grid_size == (h, w) and grid.final_state is None
    assert grid.features.shape == (2, 4, h * w, model.config.encoder_token_size)
    encoded = model(pixel_values, output_intermediates=True).encoder_features
    torch.testing.assert_close(grid.features, encoded, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Adapters of transformers' own backbones (tiny random configs of the real classes, offline)

SMALL = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)
TEXT = dict(SMALL, vocab_size=64, max_position_embeddings=16)


def _family_configs():
    import transformers as tf

    return {
        "videomae": lambda: tf.VideoMAEConfig(**SMALL, image_size=32, patch_size=8, num_frames=4, tubelet_size=2),
        "vjepa2": lambda: tf.VJEPA2Config(
            hidden_size=16, num_hidden_layers=3, num_attention_heads=2, mlp_ratio=2, crop_size=32, patch_size=8,
            frames_per_clip=4, tubelet_size=2, pred_hidden_size=16, pred_num_hidden_layers=1,
            pred_num_attention_heads=2,
        ),
        "timesformer": lambda: tf.TimesformerConfig(**SMALL, image_size=32, patch_size=8, num_frames=4),
        "vivit": lambda: tf.VivitConfig(**SMALL, image_size=32, num_frames=4, tubelet_size=[2, 8, 8]),
        "videoprism": lambda: tf.VideoPrismVisionConfig(
            hidden_size=16, num_spatial_layers=2, num_temporal_layers=1, num_attention_heads=2, intermediate_size=32,
            image_size=32, tubelet_size=[1, 8, 8], num_frames=4,
        ),
        "xclip": lambda: tf.XCLIPConfig(
            vision_config=dict(SMALL, image_size=32, patch_size=8, num_frames=4), text_config=TEXT, projection_dim=16,
            prompt_layers=1, mit_hidden_size=16, mit_intermediate_size=32, mit_num_hidden_layers=1,
            mit_num_attention_heads=2, prompt_attention_heads=2,
        ),
        "dinov2": lambda: tf.Dinov2Config(**SMALL, image_size=32, patch_size=8),
        "dinov2_with_registers": lambda: tf.Dinov2WithRegistersConfig(
            **SMALL, image_size=32, patch_size=8, num_register_tokens=2
        ),
        "dinov3_vit": lambda: tf.DINOv3ViTConfig(**SMALL, image_size=32, patch_size=8, num_register_tokens=2),
        "siglip": lambda: tf.SiglipConfig(vision_config=dict(SMALL, image_size=32, patch_size=8), text_config=TEXT),
        "siglip2": lambda: tf.Siglip2Config(vision_config=dict(SMALL, num_patches=16, patch_size=8), text_config=TEXT),
        "pe_video": lambda: tiny_pe_video(),
    }  # fmt: skip


def tiny_pe_video(**model_args):
    """A tiny PeVideoConfig whose vision tower is a tiny timm PE ViT (random, pretrained=False: no download)."""
    import transformers as tf

    tower = dict(img_size=32, patch_size=8, embed_dim=16, depth=3, num_heads=2, attn_pool_num_heads=2,
                 dynamic_img_size=True)  # fmt: skip
    tower.update(model_args)
    vision = tf.TimmWrapperConfig(architecture="vit_pe_core_tiny_patch16_384", num_labels=16, model_args=tower)
    text = dict(TEXT, num_hidden_layers=1, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
                sep_token_id=2)  # fmt: skip
    video = dict(vision_config=vision.to_dict(), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                 num_attention_heads=2, num_key_value_heads=2, head_dim=8)  # fmt: skip
    return tf.PeVideoConfig(text_config=text, video_config=video)


FAMILIES = sorted(_family_configs())
# Families whose embeddings are per patch (so a change in one pixel patch shows in one token at hidden_states[0]).
LOCAL_EMBEDDINGS = set(FAMILIES) - {"videoprism"}


def build_adapter(family: str, **kwargs):
    from rep4d.modeling.backbone_adapters import backbone_adapter_class

    config = _family_configs()[family]()
    adapter_class = backbone_adapter_class(config)
    torch.manual_seed(0)
    return adapter_class(config, **kwargs).eval(), config


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_transformers_backbone_gives_grid_features_without_special_tokens(family):
    adapter, config = build_adapter(family)
    pixel_values = video(batch=2, frames=4, height=32, width=32)
    out = adapter.get_video_features(pixel_values)
    assert out.grid_size == (4, 4) and out.final_state is None
    assert out.features.shape == (2, 4, 16, 16)
    assert adapter.tokens_per_frame(config, [32, 32]) == 16 and adapter.feature_dim(config) == 16
    # The readout's input: resampled in time to the adapter's num_frames.
    readout_input = type(adapter)(config, num_frames=6, model=adapter.model)(pixel_values)
    assert readout_input.shape == (2, 6, 16, 16)
    if family not in LOCAL_EMBEDDINGS:
        return
    # Token layout: with the embeddings as features, a change in the pixels of patch (row 1, col 2) of frame 1 must
    # show in token 1 * 4 + 2 only (special tokens dropped, (t, h, w) or (h, w, t) order undone).
    embeddings = type(adapter)(config, feature_layer=0, model=adapter.model)
    changed = pixel_values.clone()
    changed[:, 1, :, 8:16, 16:24] += 0.5
    delta = (embeddings.get_video_features(changed).features - embeddings.get_video_features(pixel_values).features)
    per_token = delta.abs().sum(dim=(0, 1, 3))
    assert per_token.argmax() == 6 and per_token[6] > 0
    torch.testing.assert_close(per_token[torch.arange(16) != 6], torch.zeros(15), atol=1e-5, rtol=0)
    per_frame = delta.abs().sum(dim=(0, 2, 3))
    assert per_frame[1] > 0 and (per_frame[3] == 0 or not adapter.frames_as_images)
    if family == "xclip":
        with pytest.raises(ValueError, match="exactly num_frames=4 frames, got 3"):
            adapter.get_video_features(pixel_values[:, :3])


def test_layer_by_relative_depth_follows_the_4ds_reference_rule():
    from rep4d.modeling.backbone_adapters import READOUT_DEPTHS, hidden_state_index

    # 4DS-B (12 blocks) reads block 10 at depth 0.95: the same rule for every backbone.
    model = FourDSModel(tiny_fourds(num_hidden_layers=12, readout_depth=0.95))
    assert hidden_state_index(12, 0.95) == model.readout_hidden_state_index == 10
    assert hidden_state_index(12, READOUT_DEPTHS["classification"]) == 7
    assert hidden_state_index(24, READOUT_DEPTHS["points"]) == 21

    adapter, _ = build_adapter("videomae")
    pixel_values = video(batch=1, frames=4, height=32, width=32)
    with torch.no_grad():
        hidden = adapter.model(pixel_values, output_hidden_states=True).hidden_states  # 4 = embeddings + 3 blocks
        tokens = hidden[hidden_state_index(3, 0.95)].reshape(1, 2, 16, 16)
        from rep4d.modeling.resampling import resample_frames

        torch.testing.assert_close(adapter.get_video_features(pixel_values).features, resample_frames(tokens, 4))
        shallow = type(adapter)(adapter.model.config, readout_depth=0.5, model=adapter.model)
        expected = resample_frames(hidden[hidden_state_index(3, 0.5)].reshape(1, 2, 16, 16), 4)
        torch.testing.assert_close(shallow.get_video_features(pixel_values).features, expected)
    with pytest.raises(ValueError, match="feature_layer must index the 4 hidden states"):
        type(adapter)(adapter.model.config, feature_layer=9, model=adapter.model).get_video_features(pixel_values)


@pytest.mark.parametrize("family", ["siglip", "xclip", "dinov2", "pe_video"])
def test_backbone_adapter_from_a_folder_loads_the_vision_weights(family, tmp_path):
    from transformers import AutoModel

    from rep4d.modeling.backbone_adapters import BackboneAdapter

    config = _family_configs()[family]()
    torch.manual_seed(0)
    full = AutoModel.from_config(config).eval()
    full.save_pretrained(tmp_path)
    adapter = BackboneAdapter.from_pretrained(str(tmp_path), num_frames=4)
    assert not adapter.training and adapter.num_frames == 4
    expected = next(m for m in full.modules() if isinstance(m, type(adapter.model))).state_dict()
    loaded = adapter.model.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, msg=key)


@torch.no_grad()
def test_pe_video_reads_its_timm_tower_at_the_readout_depth_frame_by_frame():
    from rep4d.modeling.backbone_adapters import PeVideoBackboneAdapter, hidden_state_index

    adapter, config = build_adapter("pe_video")
    assert isinstance(adapter, PeVideoBackboneAdapter)
    vit = adapter.model.timm_model
    assert vit.num_prefix_tokens == 1 and len(vit.blocks) == 3
    pixel_values = video(batch=2, frames=3, height=32, width=48)
    out = adapter.get_video_features(pixel_values)
    assert out.grid_size == (4, 6) and out.features.shape == (2, 3, 24, 16)
    # Block outputs are timm's own intermediates (CLS dropped): 3 blocks at depth 0.95 -> hidden_states[1] = block 0.
    index = hidden_state_index(3, 0.95)
    assert index == 1
    expected = vit.forward_intermediates(pixel_values.flatten(0, 1), indices=[index - 1], output_fmt="NLC",
                                         intermediates_only=True)[0]  # fmt: skip
    torch.testing.assert_close(out.features, expected.reshape(2, 3, 24, 16))
    last = type(adapter)(config, feature_layer=-1, model=adapter.model).get_video_features(pixel_values).features
    expected = vit.forward_intermediates(pixel_values.flatten(0, 1), indices=[2], output_fmt="NLC",
                                         intermediates_only=True)[0]  # fmt: skip
    torch.testing.assert_close(last, expected.reshape(2, 3, 24, 16))
    # Each frame on its own: the features of frame 0 do not depend on the other frames.
    alone = adapter.get_video_features(pixel_values[:, :1]).features
    torch.testing.assert_close(alone, out.features[:, :1])
    # A tower with a fixed input size refuses other frame sizes with the size it needs.
    fixed_config = tiny_pe_video(dynamic_img_size=False)
    fixed = PeVideoBackboneAdapter(fixed_config).eval()
    assert PeVideoBackboneAdapter.default_image_size(fixed_config) == [32, 32]
    assert fixed.get_video_features(video(batch=1, frames=2, height=32, width=32)).features.shape == (1, 2, 16, 16)
    with pytest.raises(ValueError, match="reads 32x32 frames.*got 32x48"):
        fixed.get_video_features(pixel_values)


def test_backbone_families_refused_with_a_reason():
    from rep4d.modeling.backbone_adapters import backbone_adapter_class

    class Unknown:
        model_type = "bert"

    with pytest.raises(ValueError, match="no backbone adapter for model_type 'bert'"):
        backbone_adapter_class(Unknown())


def test_readout_on_an_image_backbone_frame_by_frame():
    from rep4d.configuration import ReadoutConfig
    from rep4d.modeling import ReadoutForVideoClassification

    config = ReadoutConfig(task="classification", backbone_config=_family_configs()["dinov2"](), num_frames=4,
                           readout_num_params=16, readout_num_heads=2, num_labels=3)  # fmt: skip
    model = ReadoutForVideoClassification(config).eval()
    assert model.backbone.num_frames == 4 and model.image_size == [32, 32]
    with torch.no_grad():
        logits = model(pixel_values=video(batch=2, frames=3, height=32, width=32)).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


# --------------------------------------------------------------------------------------------------------------------
# rep4d adapters and dense_feature_extractor


@torch.no_grad()
def test_rep4d_adapters_use_get_video_features():
    from rep4d.modeling.backbone_adapters import adapter_for

    torch.manual_seed(0)
    fourds = FourDSModel(tiny_fourds()).eval()
    pixel_values = video()
    adapter = adapter_for(fourds)
    torch.testing.assert_close(adapter(pixel_values), fourds.get_video_features(pixel_values).features)
    layer = adapter_for(fourds, feature_layer=1)
    torch.testing.assert_close(
        layer.get_video_features(pixel_values).features,
        fourds.get_video_features(pixel_values, feature_layer=1).features,
    )
    moog = MooGModel(tiny_moog_config()).eval()
    moog_video = video(frames=4, width=16)
    torch.testing.assert_close(adapter_for(moog)(moog_video), moog.get_video_features(moog_video).features)


@torch.no_grad()
def test_dense_features_stream_recurrent_models_with_the_state_carried():
    from rep4d.modeling.backbone_adapters import dense_feature_extractor

    torch.manual_seed(0)
    model = RVMModel(tiny_rvm()).eval()
    frames = video(batch=1, frames=5)[0]
    whole = model.get_video_features(frames[None])
    for chunk_size in (None, 1, 2):
        dense = dense_feature_extractor(model, chunk_size=chunk_size)(frames)
        assert dense.shape == (5, 2, 3, 16) and dense.dtype == torch.float32
        torch.testing.assert_close(dense, whole.features[0].reshape(5, 2, 3, 16))
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        dense_feature_extractor(model)(frames[None])
    with pytest.raises(ValueError, match="float"):
        dense_feature_extractor(model)((frames * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="chunk_size"):
        dense_feature_extractor(model, chunk_size=0)


@torch.no_grad()
def test_dense_features_read_4ds_in_clips_and_pad_the_last_one():
    from rep4d.modeling.backbone_adapters import dense_feature_extractor

    torch.manual_seed(0)
    model = FourDSModel(tiny_fourds()).eval()  # clips of 4 frames
    frames = video(batch=1, frames=6)[0]
    dense = dense_feature_extractor(model)(frames)
    assert dense.shape == (6, 2, 3, 16)
    first = model.get_video_features(frames[None, :4]).features[0]
    last_clip = torch.cat([frames[4:], frames[5:].expand(2, -1, -1, -1)])
    last = model.get_video_features(last_clip[None]).features[0, :2]
    torch.testing.assert_close(dense, torch.cat([first, last]).reshape(6, 2, 3, 16))


@torch.no_grad()
def test_dense_features_of_4ds_at_another_frame_size_resample_the_position_table():
    # The decision lives in the adapter: no caller sets config.interpolate_pos_encoding (issue 13 fix-ups, item 5).
    from rep4d.modeling.backbone_adapters import adapter_for, dense_feature_extractor

    torch.manual_seed(0)
    model = FourDSModel(tiny_fourds()).eval()  # trained on 16x24 frames: a 2x3 grid
    assert model.config.interpolate_pos_encoding is False
    frames = video(batch=1, frames=4, height=32, width=16)[0]
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model.get_video_features(frames[None])  # the model alone still refuses a grid it was not trained on
    dense = dense_feature_extractor(model)(frames)
    assert dense.shape == (4, 4, 2, 16) and model.config.interpolate_pos_encoding is False
    expected = model.get_video_features(frames[None], interpolate_pos_encoding=True).features[0]
    torch.testing.assert_close(dense, expected.reshape(4, 4, 2, 16))
    # On the trained grid the table is used as is: the same features as the model's own.
    trained = video(batch=1, frames=4)[0]
    torch.testing.assert_close(
        adapter_for(model)(trained[None]), model.get_video_features(trained[None]).features, rtol=0, atol=0
    )


@torch.no_grad()
def test_dense_features_of_moog_are_its_encoder_tokens_and_of_image_models_per_frame():
    from rep4d.modeling.backbone_adapters import adapter_for, dense_feature_extractor

    torch.manual_seed(0)
    moog = MooGModel(tiny_moog_config()).eval()
    frames = video(batch=1, frames=3, width=16)[0]
    dense = dense_feature_extractor(moog)(frames)
    h, w = moog.encoder.feature_map_size(16, 16)
    encoded = moog(frames[None], output_intermediates=True).encoder_features[0]
    torch.testing.assert_close(dense, encoded.reshape(3, h, w, -1), atol=1e-5, rtol=1e-5)

    adapter, _ = build_adapter("dinov2")
    frames = video(batch=1, frames=5, height=32, width=32)[0]
    dense = dense_feature_extractor(adapter, chunk_size=2)(frames)
    one = dense_feature_extractor(adapter_for(adapter.model), chunk_size=5)(frames)
    torch.testing.assert_close(dense, one, atol=1e-5, rtol=1e-5)
    # The frames are normalised for the backbone (ImageNet statistics for DINOv2).
    expected = adapter.get_video_features(adapter.normalize(frames)[None]).features[0].reshape(5, 4, 4, 16)
    torch.testing.assert_close(dense, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_task_and_text_vision_models_are_reduced_to_their_backbone(tmp_path):
    from transformers import AutoModel

    from rep4d.modeling import FourDSForDepthEstimation
    from rep4d.modeling.backbone_adapters import adapter_for, dense_feature_extractor

    torch.manual_seed(0)
    depth = FourDSForDepthEstimation(tiny_fourds(readout_num_params=16, readout_num_heads=2)).eval()
    assert adapter_for(depth).model is depth.fourds
    siglip = AutoModel.from_config(_family_configs()["siglip"]()).eval()
    adapter = adapter_for(siglip)
    assert adapter.model is siglip.vision_model and type(adapter).__name__ == "SiglipBackboneAdapter"
    frames = video(batch=1, frames=2, height=32, width=32)[0]
    from_model = dense_feature_extractor(siglip)(frames)
    siglip.save_pretrained(tmp_path)
    torch.testing.assert_close(dense_feature_extractor(str(tmp_path))(frames), from_model)
    with pytest.raises(ValueError, match="expected a backbone model"):
        adapter_for(object())


@pytest.mark.parametrize("family", ["videomae", "timesformer"])
@torch.no_grad()
def test_dense_features_of_transformers_video_models_in_clips(family):
    from rep4d.modeling.backbone_adapters import dense_feature_extractor

    adapter, _ = build_adapter(family)  # clips of num_frames = 4
    frames = video(batch=1, frames=6, height=32, width=32)[0]
    dense = dense_feature_extractor(adapter)(frames)
    assert dense.shape == (6, 4, 4, 16)
    first = adapter.get_video_features(adapter.normalize(frames[:4])[None]).features[0].reshape(4, 4, 4, 16)
    torch.testing.assert_close(dense[:4], first, atol=1e-5, rtol=1e-5)
