"""MooG: golden-fixture parity, released-checkpoint manifests, streaming, randomness, errors, serialisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rep4d  # noqa: F401  (registers the Auto classes)
from rep4d.configuration.configuration_moog import MooGConfig
from rep4d.conversion import ConversionError, convert_checkpoint, plan_conversion, read_manifest
from rep4d.modeling.convert_moog import MOOG_CONVERTER
from rep4d.modeling.modeling_moog import (
    MooGForBoxTracking,
    MooGForDepthEstimation,
    MooGForNextFramePrediction,
    MooGForPointTracking,
    MooGModel,
    MooGTrackingHeadModel,
    jit_linspace,
    same_padding,
)
from rep4d.modeling.outputs import BoxTrackingOutput, DepthEstimationOutput, PointTrackingOutput
from rep4d.parity import load_case_arrays, run_parity

from testing_utils import randomized

FIXTURES = Path(__file__).parent / "fixtures" / "moog"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "case.json").is_file())
MANIFESTS = Path(__file__).parent.parent / "rep4d" / "manifests" / "moog"
BACKBONE_MANIFEST = MANIFESTS / "moog_ego4d_backbone_ckpt_164335139.json"
POINT_MANIFEST = MANIFESTS / "moog_ego4d_point_track_head_ckpt_164335139.json"
BOX_MANIFEST = MANIFESTS / "moog_ego4d_box_track_head_ckpt_164335139.json"


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


def tiny_config(**overrides) -> MooGConfig:
    values = dict(
        image_size=[16, 16],
        num_frames=4,
        conv_features=[4, 8, 8, 8, 8, 8],
        enc_fourier_bases=4,
        encoder_hidden_size=8,
        encoder_output_size=24,
        num_tokens=6,
        token_size=16,
        predictor_qkv_size=16, predictor_num_heads=2, predictor_mlp_size=32, predictor_num_layers=1,
        corrector_qkv_size=16, corrector_num_heads=2, corrector_mlp_size=32, corrector_num_layers=1,
        decoder_qkv_size=8, decoder_num_heads=2, decoder_mlp_size=32, decoder_num_layers=1,
        dec_fourier_bases=4,
        readout_num_frames=4,
        readout_fourier_bases=4,
        point_readout_num_params=16, point_readout_num_heads=2, point_readout_mlp_size=64,
        point_readout_query_mlp_size=16, point_readout_temporal_tile_size=2, point_readout_frames_per_query=2,
        box_readout_num_params=16, box_readout_num_heads=2, box_readout_mlp_size=64,
        box_readout_query_mlp_size=16, box_readout_temporal_tile_size=1, box_readout_frames_per_query=4,
        recurrent_latent_size=16, recurrent_qkv_size=16, recurrent_num_heads=2, recurrent_mlp_size=32,
        recurrent_num_layers=1,
        depth_readout_qkv_size=8, depth_readout_num_heads=2, depth_readout_mlp_size=32, depth_readout_num_layers=1,
    )
    values.update(overrides)
    return MooGConfig(**values)


def video(batch=2, frames=4, size=16, seed=0) -> torch.Tensor:
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


# Parity ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_parity(case):
    report = run_parity(FIXTURES / case)
    failures = {key: r.max_abs_error for key, r in report.results.items() if not r.ok}
    assert not failures, failures
    assert report.not_compared == []
    assert report.ok and len(report.results) >= 14


def test_jit_linspace_and_same_padding():
    # Bit-exact XLA recipe: differs from torch.linspace in at least one entry for typical sizes.
    assert jit_linspace(1).tolist() == [-1.0]
    assert jit_linspace(64)[-1] == 1.0 and jit_linspace(64)[0] == -1.0
    assert any(not torch.equal(jit_linspace(n), torch.linspace(-1, 1, n)) for n in (7, 64, 256))
    assert same_padding(32, 3, 2) == (0, 1)
    assert same_padding(33, 3, 2) == (1, 1)
    assert same_padding(32, 3, 1) == (1, 1)


def test_odd_feature_map_sizes_run():
    model = MooGModel(tiny_config()).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 18, 14), output_intermediates=True)
    # 18 -> 9 -> 5 ; 14 -> 7 -> 4 (ceil at each stride-2 layer)
    assert out.encoder_features.shape == (1, 2, 5 * 4, 24)


# Manifests of the released files -------------------------------------------------------------------------------------


def inferred_decoder_shapes() -> dict:
    manifest = json.loads(BACKBONE_MANIFEST.read_text())
    return {key: tuple(shape) for key, shape, *_ in manifest["inferred_unused_params"]}


@pytest.mark.parametrize(
    "files, with_decoder, variant, model_class",
    [
        ([BACKBONE_MANIFEST], False, "backbone", MooGModel),
        ([BACKBONE_MANIFEST], True, "backbone_decoder", MooGForNextFramePrediction),
        ([POINT_MANIFEST], False, "point_head", MooGTrackingHeadModel),
        ([BOX_MANIFEST], False, "box_head", MooGTrackingHeadModel),
        ([BACKBONE_MANIFEST, POINT_MANIFEST], False, "points", MooGForPointTracking),
        ([BACKBONE_MANIFEST, BOX_MANIFEST], True, "boxes", MooGForBoxTracking),
    ],
)
def test_released_manifests_map_every_key(files, with_decoder, variant, model_class):
    shapes = {}
    expected = 0
    for path in files:
        shapes.update(read_manifest(path))
        expected += json.loads(path.read_text())["num_params"]
    if with_decoder:
        shapes.update(inferred_decoder_shapes())
    found = MOOG_CONVERTER.identify(shapes)
    assert found == variant
    plan = plan_conversion(shapes, MOOG_CONVERTER, variant)  # raises on any unmapped/missing/mis-shaped key
    assert plan.model_class is model_class
    if variant == "backbone_decoder":
        expected = json.loads(BACKBONE_MANIFEST.read_text())["num_params_with_inferred_decoder"]
    assert plan.num_parameters == expected
    config = plan.config
    assert config.conv_strides == [2, 1, 1, 2, 1, 1] and config.encoder_output_size == 592
    assert config.token_size == 512 and config.state_ln_eps == 1e-4
    if variant in ("point_head", "points"):
        assert (config.point_readout_temporal_tile_size, config.point_readout_frames_per_query) == (8, 2)
        assert config.point_readout_num_heads == 8
    if variant in ("box_head", "boxes"):
        assert (config.box_readout_temporal_tile_size, config.box_readout_frames_per_query) == (1, 16)
        assert config.box_readout_num_heads == 4


def test_manifest_with_a_missing_key_is_refused():
    shapes = read_manifest(BACKBONE_MANIFEST)
    shapes.pop("pretrained_model/state_layer_norm/scale")
    with pytest.raises(ConversionError, match="state_layer_norm"):
        plan_conversion(shapes, MOOG_CONVERTER, "backbone")
    shapes = read_manifest(BACKBONE_MANIFEST)
    shapes["pretrained_model/predictor_sa/unexpected/kernel"] = (3, 3)
    with pytest.raises(ConversionError, match="unexpected checkpoint keys"):
        plan_conversion(shapes, MOOG_CONVERTER, "backbone")


# Recurrence, streaming, randomness ------------------------------------------------------------------------------------


def test_streaming_in_chunks_equals_one_call():
    model = randomized(MooGModel(tiny_config()))
    clip = video(frames=5)
    noise = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = model(clip, initial_noise=noise)
        first = model(clip[:, :2], initial_noise=noise)
        second = model(clip[:, 2:3], state=first.final_state)
        third = model(clip[:, 3:], state=second.final_state)
    chunked = torch.cat([first.features, second.features, third.features], dim=1)
    torch.testing.assert_close(chunked, whole.features, rtol=0, atol=1e-6)
    torch.testing.assert_close(third.final_state, whole.final_state, rtol=0, atol=1e-6)
    predicted = torch.cat([first.predicted_states, second.predicted_states, third.predicted_states], dim=1)
    torch.testing.assert_close(predicted, whole.predicted_states, rtol=0, atol=1e-6)
    assert whole.features.shape == (2, 5, 6, 16) and whole.final_state.shape == (2, 6, 16)


def test_training_preset_streams_too():
    config = tiny_config(posenc_mode="project_add", encoder_output_size=None, state_norm_position="end",
                         conv_strides=[1, 1, 1, 2, 1, 2])
    model = randomized(MooGModel(config))
    clip = video(frames=3)
    with torch.no_grad():
        torch.manual_seed(0)
        whole = model(clip)
        torch.manual_seed(0)
        first = model(clip[:, :1])
        rest = model(clip[:, 1:], state=first.final_state)
    torch.testing.assert_close(torch.cat([first.features, rest.features], 1), whole.features, rtol=0, atol=1e-6)
    # "end" placement: the emitted corrected states are layer-normed (zero mean over channels up to the scale).
    assert whole.features.shape == (2, 3, 6, 16)
    assert MooGConfig.from_preset("movi").state_norm_position == "end"
    assert MooGConfig.from_preset("released").posenc_mode == "concat"


def test_initial_state_reproducible():
    model = MooGModel(tiny_config()).eval()
    clip = video(batch=1, frames=2)
    with torch.no_grad():
        a = model(clip, generator=torch.Generator().manual_seed(7))
        b = model(clip, generator=torch.Generator().manual_seed(7))
        c = model(clip, generator=torch.Generator().manual_seed(8))
        torch.manual_seed(11)
        d = model(clip)
        torch.manual_seed(11)
        e = model(clip)
        noise = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(7))
        f = model(clip, initial_noise=noise)
        g = model(clip, state=1e-4 * noise)
    assert torch.equal(a.features, b.features)
    assert not torch.equal(a.features, c.features)
    assert torch.equal(d.features, e.features)
    torch.testing.assert_close(a.features, f.features, rtol=0, atol=0)
    torch.testing.assert_close(f.features, g.features, rtol=0, atol=1e-6)


def test_number_of_tokens_can_change_at_inference():
    model = MooGModel(tiny_config()).eval()
    with torch.no_grad():
        out = model(video(batch=1, frames=2), num_tokens=11)
        more = model(video(batch=1, frames=1), state=out.final_state)
    assert out.features.shape == (1, 2, 11, 16)
    assert more.final_state.shape == (1, 11, 16)


# Errors ------------------------------------------------------------------------------------------------------------


def test_bad_inputs_are_refused():
    config = tiny_config()
    model = MooGModel(config).eval()
    with pytest.raises(ValueError, match=r"\(batch, frames, channels, height, width\)"):
        model(torch.rand(4, 3, 16, 16))
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(1, 2, 4, 16, 16))
    with pytest.raises(ValueError, match="floating"):
        model(torch.zeros(1, 2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"state must have shape \(1, num_tokens, 16\)"):
        model(video(batch=1, frames=1), state=torch.zeros(1, 6, 12))
    with pytest.raises(ValueError, match="state must have shape"):
        model(video(batch=1, frames=1), state=torch.zeros(2, 6, 16))
    with pytest.raises(ValueError, match="initial_noise must have shape"):
        model(video(batch=1, frames=1), initial_noise=torch.zeros(1, 5, 16))
    points = MooGForPointTracking(config).eval()
    with pytest.raises(ValueError, match="exactly 4 frames, got 3"):
        points(video(batch=1, frames=3), torch.rand(1, 2, 2))
    with pytest.raises(ValueError, match=r"query_points must have shape \(1, num_queries, 2\)"):
        points(video(batch=1, frames=4), torch.rand(1, 2, 4))
    boxes = MooGForBoxTracking(config).eval()
    with pytest.raises(ValueError, match="exactly 4 frames, got 5"):
        boxes(video(batch=1, frames=5), torch.rand(1, 2, 4))
    predictor = MooGForNextFramePrediction(config).eval()
    with pytest.raises(ValueError, match="divisible by the subsampling factor 3"):
        predictor(video(batch=1, frames=1), subsample_factor=3)
    with pytest.raises(ValueError, match="conv_strides"):
        MooGConfig(conv_features=[8, 8], conv_strides=[2])
    with pytest.raises(ValueError, match="temporal_tile_size"):
        MooGConfig(point_readout_temporal_tile_size=3)


# Heads ----------------------------------------------------------------------------------------------------------------


def test_next_frame_prediction_modes():
    model = randomized(MooGForNextFramePrediction(tiny_config(train_subsample_factor=4)))
    clip = video(frames=2)
    with torch.no_grad():
        full = model(clip, generator=torch.Generator().manual_seed(0))
        chunked = model(clip, generator=torch.Generator().manual_seed(0), decoder_chunk_size=50)
    assert full.predicted_pixel_values.shape == (2, 2, 3, 16, 16)
    torch.testing.assert_close(full.predicted_pixel_values, chunked.predicted_pixel_values, rtol=0, atol=1e-6)
    torch.testing.assert_close(full.target_pixel_values, clip)
    model.train()
    out = model(clip, generator=torch.Generator().manual_seed(0))
    assert out.predicted_pixel_values.shape == (2, 2, 3, 4, 4)
    assert out.loss.ndim == 0 and out.loss.requires_grad
    expected = ((out.predicted_pixel_values - out.target_pixel_values) ** 2).mean()
    torch.testing.assert_close(out.loss, expected)
    offsets = torch.tensor([[[0, 0], [1, 2]], [[3, 3], [2, 0]]])
    given = model(clip, offsets=offsets)
    # Subsampled pixel k sits at (4k + 2 - offset) mod 16.
    assert given.pixel_rows[1, 0].tolist() == [(4 * k + 2 - 3) % 16 for k in range(4)]
    assert given.pixel_cols[0, 1].tolist() == [(4 * k + 2 - 2) % 16 for k in range(4)]
    model.eval()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attended = model(clip[:1, :1], output_attentions=True)
    weights = attended.decoder_attentions[-1]
    assert weights.shape == (1, 1, 2, 256, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 1, 2, 256))


def test_tracking_heads_and_assembly(tmp_path):
    config = tiny_config()
    points = randomized(MooGForPointTracking(config))
    clip, queries = video(frames=4), torch.rand(2, 3, 2)
    with torch.no_grad():
        out = points(clip, queries, generator=torch.Generator().manual_seed(0))
    # The shared point output: (B, Q, T, 2) (x, y) pixels of the 16x16 input, (B, Q, T) logits and occlusion.
    assert isinstance(out, PointTrackingOutput)
    assert out.tracks.shape == (2, 3, 4, 2) and out.occluded.shape == (2, 3, 4) and out.occluded.dtype == torch.bool
    assert out.visibility_logits.shape == out.certainty_logits.shape == (2, 3, 4)
    assert ((out.tracks >= 0) & (out.tracks <= 16)).all() and out.tracks.max() > 1
    product = torch.sigmoid(out.visibility_logits) * torch.sigmoid(out.certainty_logits)
    assert torch.equal(~out.occluded, product > 0.5)
    # A stand-alone head + a backbone give the same tracking model.
    head_config = tiny_config(tracking_head="point")
    head = MooGTrackingHeadModel(head_config)
    head.readout.load_state_dict(points.readout.state_dict())
    backbone = MooGModel(config)
    backbone.load_state_dict(points.moog.state_dict())
    assembled = MooGForPointTracking.from_backbone_and_head(backbone, head)
    with torch.no_grad():
        again = assembled(clip, queries, generator=torch.Generator().manual_seed(0))
        direct = head(out.features, queries, frame_size=(16, 16))
        default_size = head(out.features, queries)  # config.image_size = [16, 16]
    torch.testing.assert_close(again.tracks, out.tracks, rtol=0, atol=0)
    torch.testing.assert_close(direct.tracks, out.tracks, rtol=0, atol=0)
    torch.testing.assert_close(default_size.tracks, out.tracks, rtol=0, atol=0)
    # Pixels of the frames given: twice the frame size, twice the pixel coordinates.
    with torch.no_grad():
        doubled = head(out.features, queries, frame_size=(32, 32))
    torch.testing.assert_close(doubled.tracks, 2 * out.tracks)
    boxes = randomized(MooGForBoxTracking(config))
    with torch.no_grad():
        box_out = boxes(clip, torch.rand(2, 5, 4))
    assert isinstance(box_out, BoxTrackingOutput)
    assert box_out.boxes.shape == (2, 5, 4, 4) and "tracks" not in box_out


def test_recurrent_point_readout_streams_over_any_length():
    model = randomized(MooGForPointTracking(tiny_config(point_readout_type="recurrent")))
    clip, queries = video(frames=6), torch.rand(2, 3, 2)
    noise = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(clip, queries, initial_noise=noise)
        first = model(clip[:, :4], queries, initial_noise=noise)
        rest = model(clip[:, 4:], queries, state=first.final_state, readout_state=first.readout_state)
    assert whole.tracks.shape == (2, 3, 6, 2) and whole.occluded.shape == (2, 3, 6)
    torch.testing.assert_close(torch.cat([first.tracks, rest.tracks], 2), whole.tracks, rtol=0, atol=16e-6)


def test_point_heads_take_the_shared_pixel_query_layout():
    # Every rep4d point model takes (t, y, x) queries in pixels of its input frames; MooG's (x, y) in [0, 1] stays.
    clip, unit = video(frames=4), torch.rand(2, 3, 2)
    pixel = torch.stack([torch.zeros(2, 3), unit[..., 1] * 16, unit[..., 0] * 16], dim=-1)  # 16x16 frames
    points = randomized(MooGForPointTracking(tiny_config()))
    with torch.no_grad():
        reference = points(clip, unit, generator=torch.Generator().manual_seed(0))
        shared = points(clip, pixel, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(shared.tracks, reference.tracks, rtol=0, atol=1e-6)
    later = pixel.clone()
    later[0, 0, 0] = 2
    with pytest.raises(ValueError, match="first frame of the clip only"):
        points(clip, later)
    # The recurrent readout inserts each query at its frame t (query_frame_mask from t).
    recurrent = randomized(MooGForPointTracking(tiny_config(point_readout_type="recurrent")))
    mask = torch.zeros(2, 4, 3, dtype=torch.bool)
    mask[:, 0] = True
    mask[0, 0, 0], mask[0, 2, 0] = False, True
    noise = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        explicit = recurrent(clip, unit, query_frame_mask=mask, initial_noise=noise)
        from_t = recurrent(clip, later, initial_noise=noise)
    torch.testing.assert_close(from_t.tracks, explicit.tracks, rtol=0, atol=1e-6)


def test_grid_depth_readout():
    model = randomized(MooGForDepthEstimation(tiny_config(train_subsample_factor=4)))
    clip = video(frames=2)
    labels = torch.rand(2, 2, 16, 16) + 0.5
    with torch.no_grad():
        out = model(clip, labels=labels)
        coarse = model(clip, output_size=(8, 8))
    assert isinstance(out, DepthEstimationOutput) and out.final_state.shape == (2, 6, 16)
    assert out.predicted_depth.shape == (2, 2, 16, 16) and out.loss.ndim == 0
    assert coarse.predicted_depth.shape == (2, 2, 8, 8)
    model.train()
    train = model(clip, labels=labels, generator=torch.Generator().manual_seed(0))
    assert train.predicted_depth.shape == (2, 2, 4, 4)
    train.loss.backward()
    assert model.readout.recon.weight.grad is not None


# Conversion to folders (save/load, eager vs SDPA, checkpointing: tests/conformance/model_checks.py) ------------------


def test_convert_fixture_files_to_folders(tmp_path):
    case = FIXTURES / "tiny_points"
    overrides = dict(num_tokens=16, readout_num_frames=4, image_size=[32, 32], num_frames=4)
    backbone_arrays = load_case_arrays(case / "backbone_params.npz")
    head_arrays = load_case_arrays(case / "point_head_params.npz")
    backbone = convert_checkpoint(backbone_arrays, tmp_path / "backbone", **overrides)
    assert backbone.variant == "backbone_decoder"
    head = convert_checkpoint(head_arrays, tmp_path / "head", **overrides)
    assert head.variant == "point_head"
    merged = convert_checkpoint({**backbone_arrays, **head_arrays}, tmp_path / "tracking", **overrides)
    assert merged.variant == "points"
    inputs = np.load(case / "inputs.npz", allow_pickle=False)
    reference = np.load(case / "outputs.npz", allow_pickle=False)
    clip = torch.from_numpy(inputs["video"]).permute(0, 1, 4, 2, 3)
    state = torch.from_numpy(inputs["init_state"])
    queries = torch.from_numpy(inputs["query_points"])
    tracking = MooGForPointTracking.from_pretrained(tmp_path / "tracking").eval()
    assembled = MooGForPointTracking.from_backbone_and_head(
        MooGForNextFramePrediction.from_pretrained(tmp_path / "backbone"),
        MooGTrackingHeadModel.from_pretrained(tmp_path / "head"),
    )
    with torch.no_grad():
        for model in (tracking, assembled):
            out = model(clip, queries, state=state)
            # tracks in pixels of the case's frames; the reference holds the head's [0, 1] (B, T, Q, 2) layout.
            size = torch.tensor([clip.shape[-1], clip.shape[-2]], dtype=torch.float32)
            values = (out.tracks / size).transpose(1, 2)
            np.testing.assert_allclose(values.numpy(), reference["points_values"], atol=1e-4, rtol=1e-4)
            visible = (~out.occluded).transpose(1, 2)[..., None].float()
            np.testing.assert_array_equal(visible.numpy(), reference["points_visible"])
    assert (tmp_path / "tracking" / "video_preprocessor_config.json").is_file()


# transformers conventions: hidden states / attentions, input embeddings, wrong families ------------------------------


def test_hidden_states_and_attentions_are_explicit_and_honoured():
    config = tiny_config(predictor_num_layers=2, corrector_num_layers=1)
    model = randomized(MooGModel(config))
    model.set_attn_implementation("eager")
    clip, noise = video(batch=2, frames=3), torch.randn(2, 6, 16)
    with torch.no_grad():
        plain = model(clip, initial_noise=noise)
        full = model(clip, initial_noise=noise, output_hidden_states=True, output_attentions=True)
    assert plain.hidden_states is None and plain.attentions is None and plain.cross_attentions is None
    # state entering the predictor + 2 predictor layers + 1 corrector layer, each (B, T, K, D).
    assert len(full.hidden_states) == 4 and all(h.shape == (2, 3, 6, 16) for h in full.hidden_states)
    torch.testing.assert_close(full.hidden_states[0][:, 0], model.state_norm(noise * config.state_init_scale))
    # Self-attention of every predictor and corrector layer over the K tokens, rows summing to one.
    assert len(full.attentions) == 3 and all(a.shape == (2, 3, 2, 6, 6) for a in full.attentions)
    torch.testing.assert_close(full.attentions[0].sum(-1), torch.ones(2, 3, 2, 6))
    # Corrector cross-attention over the encoder tokens of the frame (16x16, two stride-2 convs -> 4x4 tokens).
    assert len(full.cross_attentions) == 1 and full.cross_attentions[0].shape == (2, 3, 2, 6, 16)
    torch.testing.assert_close(full.features, plain.features)
    # The config defaults are honoured too, and the heads pass them through.
    model.config.output_hidden_states = True
    with torch.no_grad():
        assert len(model(clip, initial_noise=noise).hidden_states) == 4
    model.config.output_hidden_states = False
    for head in (MooGForPointTracking(config), MooGForBoxTracking(config), MooGForDepthEstimation(config)):
        head.set_attn_implementation("eager")
        query = torch.rand(2, 3, 2 if isinstance(head, MooGForPointTracking) else 4)
        args = () if isinstance(head, MooGForDepthEstimation) else (query,)
        frames = 4 if args else 2
        with torch.no_grad():
            out = head(video(frames=frames), *args, output_hidden_states=True, output_attentions=True)
        assert len(out.hidden_states) == 4 and len(out.attentions) == 3, type(head).__name__
        assert out.final_state.shape == (2, 6, 16)
    predictor = MooGForNextFramePrediction(config)
    predictor.set_attn_implementation("eager")
    with torch.no_grad():
        out = predictor(clip, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 4 and len(out.attentions) == 3 and len(out.decoder_attentions) == 1


def test_attentions_under_sdpa_warn_and_return_none(caplog):
    from transformers.utils import logging as hf_logging

    model = MooGForNextFramePrediction(tiny_config())
    model.set_attn_implementation("sdpa")
    hf_logging.enable_propagation()
    try:
        with torch.no_grad(), caplog.at_level("WARNING"):
            out = model(video(batch=1, frames=1), output_attentions=True)
    finally:
        hf_logging.disable_propagation()
    assert out.attentions is None and out.decoder_attentions is None and out.predicted_pixel_values is not None
    assert "eager" in caplog.text


def test_input_embeddings_are_the_input_projections():
    # The task models return their base model's: test_model_get_set_embeddings in tests/conformance.
    model = MooGModel(tiny_config())
    assert model.get_input_embeddings() is model.encoder
    assert model.get_output_embeddings() is None
    head = MooGTrackingHeadModel(tiny_config(tracking_head="box"))
    assert head.get_input_embeddings() is head.readout.query_embedding
    replacement = torch.nn.Identity()
    head.set_input_embeddings(replacement)
    assert head.get_input_embeddings() is replacement


def test_a_model_of_another_family_is_refused():
    from rep4d.configuration.configuration_fourds import FourDSConfig
    from rep4d.modeling.modeling_fourds import FourDSModel

    fourds = FourDSModel(
        FourDSConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=[16, 16],
            num_frames=4,
        )
    )
    head = MooGTrackingHeadModel(tiny_config(tracking_head="point"))
    with pytest.raises(ValueError, match="model family 'moog'.*'fourds'"):
        MooGForPointTracking.from_backbone_and_head(fourds, head)
    with pytest.raises(ValueError, match="needs a box head"):
        MooGForBoxTracking.from_backbone_and_head(MooGModel(tiny_config()), head)


def _combined_case(tmp_path: Path) -> Path:
    """A case carrying both a point head and a box head, merged from the point and the box fixtures (same backbone,
    video and initial state)."""
    points, boxes = FIXTURES / "tiny_points", FIXTURES / "tiny_boxes"
    point_case, box_case = (json.loads((d / "case.json").read_text()) for d in (points, boxes))
    case_dir = tmp_path / "tiny_points_and_boxes"
    case_dir.mkdir()
    case = {**point_case, "name": case_dir.name, "box_head": box_case["box_head"]}
    case["outputs"] = {**point_case["outputs"], **box_case["outputs"]}
    case["inputs"] = {**point_case["inputs"], **box_case["inputs"]}
    case["param_files"] = ["backbone_params.npz", "point_head_params.npz", "box_head_params.npz"]
    (case_dir / "case.json").write_text(json.dumps(case))
    for name, source in (("backbone_params.npz", points), ("point_head_params.npz", points),
                         ("box_head_params.npz", boxes)):
        (case_dir / name).write_bytes((source / name).read_bytes())
    for name in ("inputs.npz", "outputs.npz"):
        a, b = load_case_arrays(points / name), load_case_arrays(boxes / name)
        shared = set(a) & set(b)
        for key in shared:
            np.testing.assert_array_equal(a[key], b[key])
        np.savez(case_dir / name, **{**a, **b})
    return case_dir


def test_parity_case_with_point_and_box_heads(tmp_path):
    report = run_parity(_combined_case(tmp_path))
    failures = {key: r.max_abs_error for key, r in report.results.items() if not r.ok}
    assert not failures, failures
    assert report.not_compared == []
    assert {"points_values", "points_visible", "boxes_values", "boxes_readout_raw"} <= set(report.results)


def test_token_projection_is_the_zero_layer_transformer_it_replaces():
    """MooG's encoder token projection (the reference's block-free ImprovedTransformer) keeps its keys and numerics."""
    from rep4d.modeling.modeling_moog import MooGTokenProjection, MooGTransformer

    config = MooGConfig()
    for hidden, output in ((16, 8), (16, None), (None, None)):
        projection = MooGTokenProjection(config, 12, hidden, output)
        transformer = MooGTransformer(
            config, 12, num_layers=0, qkv_size=1, num_heads=1, mlp_size=1, hidden_size=hidden, output_size=output
        )
        assert sorted(projection.state_dict()) == sorted(transformer.state_dict())
        transformer.load_state_dict(projection.state_dict())
        tokens = torch.randn(2, 5, 12)
        torch.testing.assert_close(projection(tokens), transformer(tokens)[0], rtol=0, atol=0)


def test_default_video_features_do_not_depend_on_the_batch_position():
    torch.manual_seed(0)
    model = randomized(MooGModel(tiny_config())).eval()
    clip, other = torch.rand(2, 1, 4, 3, 16, 16)
    with torch.no_grad():
        first = model.get_video_features(torch.cat([clip, other])).features
        second = model.get_video_features(torch.cat([other, clip])).features
        alone = model.get_video_features(clip).features
    torch.testing.assert_close(first[0], second[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first[:1], alone, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(first[0], first[1])  # and the two clips are told apart
