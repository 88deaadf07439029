"""Readout heads on tiny 4DS and VideoMAE backbones: forward/backward, training, save/load, bad inputs, Trainer."""

import pytest
import torch
from transformers import (
    AutoModelForVideoClassification,
    Trainer,
    TrainingArguments,
    VideoMAEConfig,
)

import rep4d  # noqa: F401
from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.configuration.configuration_readout import ReadoutConfig
from rep4d.modeling.backbone_adapters import BackboneAdapter, register_backbone_adapter
from rep4d.modeling.modeling_fourds import FourDSModel
from rep4d.modeling.modeling_readout import (
    READOUT_CLASSES,
    ReadoutForBoxTracking,
    ReadoutForCameraPose,
    ReadoutForDepthEstimation,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
    load_readout,
    project_to_rotation,
)
from rep4d.training.optimization import parameter_groups


def trainer_parameter_groups(model, learning_rate):
    """The readout trainer's optimizer groups (``ReadoutTrainer.create_optimizer``), without weight decay."""
    return parameter_groups(model, 0.0, learning_rate, backbone_prefix="backbone.",
                            backbone_learning_rate_scale=model.config.backbone_learning_rate_scale)

FRAMES, SIZE, BATCH = 4, 16, 2


def tiny_fourds():
    return FourDSConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        tubelet_size=[2, 8, 8], image_size=[SIZE, SIZE], num_frames=FRAMES,
    )  # fmt: skip


def tiny_videomae():
    return VideoMAEConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        image_size=SIZE, patch_size=8, num_frames=FRAMES, tubelet_size=2,
    )  # fmt: skip


BACKBONES = {"fourds": tiny_fourds, "videomae": tiny_videomae}


def readout_config(task, backbone="fourds", **overrides):
    settings = dict(readout_num_params=16, readout_num_heads=2, num_labels=3, decoding_patch_size=[2, 8, 8],
                    num_fourier_bands=4)  # fmt: skip
    settings.update(overrides)
    return ReadoutConfig(task=task, backbone_config=BACKBONES[backbone](), **settings)


def rotation_z(angle):
    c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_batch(task, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batch = {"pixel_values": torch.rand(BATCH, FRAMES, 3, SIZE, SIZE, generator=generator)}
    if task == "depth":
        batch["depth"] = 1 + torch.rand(BATCH, FRAMES, SIZE, SIZE, generator=generator)
    elif task == "points":
        points = 3
        batch["query_points"] = torch.cat(
            [torch.zeros(BATCH, points, 1), torch.rand(BATCH, points, 2, generator=generator) * SIZE], dim=-1
        )
        batch["tracks"] = torch.rand(BATCH, points, FRAMES, 2, generator=generator) * SIZE
        batch["occluded"] = torch.rand(BATCH, points, FRAMES, generator=generator) > 0.7
    elif task == "boxes":
        corner = torch.rand(BATCH, 2, FRAMES, 2, generator=generator) * 0.5
        batch["boxes"] = torch.cat([corner, corner + 0.3], dim=-1)
        batch["box_visible"] = torch.ones(BATCH, 2, FRAMES, dtype=torch.bool)
    elif task == "pose":
        batch["camera_rotation"] = torch.stack([rotation_z(0.3), rotation_z(-0.5)])
        batch["camera_translation"] = torch.tensor([[0.5, -0.2, 0.1], [-0.3, 0.4, 0.2]])
    else:
        batch["labels"] = torch.tensor([0, 2])
    return batch


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("task", sorted(READOUT_CLASSES))
def test_forward_backward_frozen(task, backbone):
    torch.manual_seed(0)
    model = READOUT_CLASSES[task](readout_config(task, backbone))
    model.train()
    assert not model.backbone.training, "frozen backbones stay in eval mode"
    outputs = model(**make_batch(task))
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    outputs.loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    readout_grads = [p.grad for p in model.readout.parameters()]
    assert all(g is not None for g in readout_grads) and any(g.abs().sum() > 0 for g in readout_grads)


def test_output_shapes_and_semantics():
    torch.manual_seed(0)
    batch = make_batch("points")
    out = ReadoutForPointTracking(readout_config("points")).eval()(**batch)
    assert out.tracks.shape == (BATCH, 3, FRAMES, 2) and out.occluded.dtype == torch.bool
    expected = torch.sigmoid(out.visibility_logits) * torch.sigmoid(out.certainty_logits) <= 0.5
    assert torch.equal(out.occluded, expected)
    depth = ReadoutForDepthEstimation(readout_config("depth", depth_query_type="coordinate"))(**make_batch("depth"))
    assert depth.predicted_depth.shape == (BATCH, FRAMES, SIZE, SIZE)
    boxes = ReadoutForBoxTracking(readout_config("boxes"))(**make_batch("boxes")).boxes
    assert boxes.shape == (BATCH, 2, FRAMES, 4)
    assert (boxes[..., 0] <= boxes[..., 2]).all() and (boxes[..., 1] <= boxes[..., 3]).all()
    rotation = ReadoutForCameraPose(readout_config("pose"))(**make_batch("pose")).rotation
    identity = torch.eye(3).expand_as(rotation)
    torch.testing.assert_close(rotation @ rotation.transpose(-1, -2), identity, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.det(rotation), torch.ones(BATCH), atol=1e-5, rtol=0)


def test_procrustes_projection():
    torch.manual_seed(0)
    rotation = rotation_z(0.7)
    torch.testing.assert_close(project_to_rotation(rotation), rotation, atol=1e-6, rtol=0)
    reflected = project_to_rotation(torch.diag(torch.tensor([1.0, 1.0, -1.0])) + 0.01 * torch.randn(3, 3))
    assert torch.det(reflected) > 0.99


@pytest.mark.parametrize("task", sorted(READOUT_CLASSES))
def test_loss_decreases_on_fixed_batch(task):
    torch.manual_seed(0)
    model = READOUT_CLASSES[task](readout_config(task))
    batch = make_batch(task)
    features = model.extract_features(batch.pop("pixel_values"))  # frozen: cache the features once
    optimizer = torch.optim.AdamW(trainer_parameter_groups(model, learning_rate=1e-2))
    losses = []
    for _ in range(15):
        loss = model(features=features, **batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_cached_features_match_pixels():
    model = ReadoutForVideoClassification(readout_config("classification", "videomae")).eval()
    batch = make_batch("classification")
    features = model.extract_features(batch["pixel_values"])
    assert features.shape == (BATCH, FRAMES, (SIZE // 8) ** 2, 16)
    torch.testing.assert_close(model(features=features).logits, model(pixel_values=batch["pixel_values"]).logits)


def test_end_to_end_mode_and_parameter_groups():
    model = ReadoutForVideoClassification(readout_config("classification", freeze_backbone=False))
    model.train()
    assert model.backbone.training
    model(**make_batch("classification")).loss.backward()
    # Blocks above the 4DS readout layer get no gradient; the embedding and the read blocks do.
    assert model.backbone.model.embeddings.patch_embeddings.weight.grad.abs().sum() > 0
    groups = trainer_parameter_groups(model, learning_rate=1e-3)
    by_part = {group["name"]: group for group in groups}
    assert by_part["readout_decay"]["lr"] == pytest.approx(1e-3)
    assert by_part["backbone_decay"]["lr"] == pytest.approx(3e-6)  # the paper's 0.003x
    counted = sum(p.numel() for group in groups for p in group["params"])
    assert counted == sum(p.numel() for p in model.parameters())
    frozen_groups = trainer_parameter_groups(ReadoutForVideoClassification(readout_config("classification")), 1e-3)
    assert all(group["name"].startswith("readout") for group in frozen_groups)


def test_from_backbone_copies_weights():
    backbone = FourDSModel(tiny_fourds()).eval()
    config_kwargs = dict(readout_num_params=16, readout_num_heads=2, decoding_patch_size=[2, 8, 8])
    model = ReadoutForDepthEstimation.from_backbone(backbone, backbone_name_or_path="local/tiny-4ds", **config_kwargs)
    assert model.config.backbone_name_or_path == "local/tiny-4ds"
    pixels = make_batch("depth")["pixel_values"]
    torch.testing.assert_close(model.extract_features(pixels), backbone(pixels).readout_features)


# Save/load of every head on a 4DS backbone through from_pretrained and the Auto classes:
# tests/conformance/model_checks.py; here rep4d's load_readout and a transformers backbone.
def test_save_load_round_trip_on_a_transformers_backbone(tmp_path):
    torch.manual_seed(0)
    model = ReadoutForVideoClassification(readout_config("classification", "videomae")).eval()
    batch = make_batch("classification")
    expected = model(**batch)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = load_readout(tmp_path).eval()
    assert type(loaded) is type(model) and loaded.config.backbone_config.model_type == "videomae"
    for key, value in expected.items():
        torch.testing.assert_close(loaded(**batch)[key], value)
    auto = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(auto(**batch).logits, expected.logits)


def test_multi_clip_evaluation():
    model = ReadoutForVideoClassification(readout_config("classification", num_test_clips=2)).eval()
    batch = make_batch("classification")
    out = model(pixel_values=batch["pixel_values"], labels=torch.tensor([1]))  # 2 clips of one video
    assert out.logits.shape == (2, 3)  # per clip; the label of the video counts for both clips
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([1, 1])))
    # The metric averages the clips' softmaxes (training/metrics.average_clips, the one implementation).
    from rep4d.training.metrics import average_clips

    averaged = average_clips(out.logits.detach().numpy(), 2)
    torch.testing.assert_close(torch.from_numpy(averaged[0]).float(), out.logits.detach().softmax(-1).mean(0))
    with pytest.raises(ValueError, match="videos x 2 clips"):
        model(pixel_values=batch["pixel_values"][:1])


def test_bad_inputs_raise_clear_errors():
    points = ReadoutForPointTracking(readout_config("points"))
    batch = make_batch("points")
    outside = batch["tracks"].clone()
    outside[~batch["occluded"]] = SIZE + 5.0
    with pytest.raises(ValueError, match="inside the 16x16 frame"):
        points(**{**batch, "tracks": outside})
    with pytest.raises(ValueError, match="needs `occluded`"):
        points(**{k: v for k, v in batch.items() if k != "occluded"})
    with pytest.raises(ValueError, match="needs `query_points`"):
        points(pixel_values=batch["pixel_values"])
    with pytest.raises(ValueError, match=r"`tracks` must have shape \(2, 3, 4, 2\)"):
        points(**{**batch, "tracks": batch["tracks"][:, :, :2]})

    boxes = ReadoutForBoxTracking(readout_config("boxes"))
    batch = make_batch("boxes")
    flipped = batch["boxes"].clone()
    flipped[..., [0, 2]] = flipped[..., [2, 0]]
    with pytest.raises(ValueError, match="ymin <= ymax"):
        boxes(**{**batch, "boxes": flipped})
    with pytest.raises(ValueError, match=r"normalised to \[0, 1\]"):
        boxes(**{**batch, "boxes": batch["boxes"] * SIZE})

    classifier = ReadoutForVideoClassification(readout_config("classification"))
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\)"):
        classifier(pixel_values=make_batch("classification")["pixel_values"], labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="exactly one of `pixel_values`"):
        classifier()

    pose = ReadoutForCameraPose(readout_config("pose"))
    with pytest.raises(ValueError, match="rotation matrices"):
        pose(pixel_values=make_batch("pose")["pixel_values"], camera_rotation=2 * torch.eye(3).expand(BATCH, 3, 3))
    pose_batch = make_batch("pose")
    with pytest.raises(ValueError, match=r"`camera_translation` must have shape \(2, 3\)"):
        pose(**{**pose_batch, "camera_translation": torch.zeros(BATCH, 4)})
    with pytest.raises(ValueError, match="`camera_translation` was given without `camera_rotation`"):
        pose(pixel_values=pose_batch["pixel_values"], camera_translation=pose_batch["camera_translation"])

    depth = ReadoutForDepthEstimation(readout_config("depth"))
    with pytest.raises(ValueError, match="`depth` must have shape"):
        depth(pixel_values=make_batch("depth")["pixel_values"], depth=torch.ones(BATCH, FRAMES, 8, 8))

    with pytest.raises(ValueError, match="task='boxes'"):
        ReadoutForPointTracking(readout_config("boxes"))
    with pytest.raises(ValueError, match="task must be one of"):
        ReadoutConfig(task="segmentation")


def test_register_new_backbone_adapter():
    class TinyStatesModel(torch.nn.Module):  # stands in for MooG: (B, T, K, D) states
        def __init__(self, config):
            super().__init__()
            self.proj = torch.nn.Linear(3, config.hidden_size)

        def forward(self, pixel_values):
            return self.proj(pixel_values.flatten(3).transpose(2, 3)[:, :, :5])

    class TinyStatesAdapter(BackboneAdapter):
        model_class = TinyStatesModel

        def extract(self, pixel_values, feature_layer=None):
            return self.model(pixel_values)

    config = tiny_fourds()
    config.model_type = "tiny_states"  # instance attribute: adapters are looked up by config.model_type
    register_backbone_adapter("tiny_states", TinyStatesAdapter)
    model = ReadoutForVideoClassification(
        ReadoutConfig(
            task="classification", backbone_config=config, readout_num_params=16, readout_num_heads=2, num_labels=3
        )
    )
    assert model.backbone.num_frames == FRAMES
    assert model(**make_batch("classification")).logits.shape == (BATCH, 3)


def test_trainer_steps_point_tracking(tmp_path):
    torch.manual_seed(0)
    model = ReadoutForPointTracking(readout_config("points"))
    examples = []
    for seed in range(4):
        batch = make_batch("points", seed)
        examples += [{key: value[i] for key, value in batch.items()} for i in range(BATCH)]

    def collate(items):
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

    optimizer = torch.optim.AdamW(trainer_parameter_groups(model, learning_rate=3e-3))
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=4, per_device_eval_batch_size=4,
        max_steps=3, logging_steps=1, report_to="none", remove_unused_columns=False,
        label_names=["tracks", "occluded"], save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=examples, eval_dataset=examples[:4],
                      data_collator=collate, optimizers=(optimizer, None))  # fmt: skip
    result = trainer.train()
    assert result.global_step == 3 and torch.isfinite(torch.tensor(result.training_loss))
    prediction = trainer.predict(examples[:4])
    tracks, visibility, certainty, occluded = prediction.predictions
    assert tracks.shape == (4, 3, FRAMES, 2) and occluded.shape == (4, 3, FRAMES)
    gt_tracks, gt_occluded = prediction.label_ids
    assert gt_tracks.shape == (4, 3, FRAMES, 2) and gt_occluded.dtype == bool
    assert "test_loss" in prediction.metrics


def test_log_depth_loss_option_is_relative_and_masked():
    from rep4d.modeling.losses import log_depth_loss

    depth = torch.tensor([[[[2.0, 20.0], [0.0, 4.0]]]])
    predicted = torch.tensor([[[[4.0, 40.0], [7.0, 4.0]]]])
    # log 2 error on both scaled pixels, 0 on the exact one; the invalid (depth 0) pixel is ignored.
    expected = (2 * torch.log(torch.tensor(2.0)) ** 2 / 3).item()
    assert log_depth_loss(predicted, depth).item() == pytest.approx(expected, rel=1e-6)
    expected_l1 = (2 * torch.log(torch.tensor(2.0)) / 3).item()
    assert log_depth_loss(predicted, depth, norm="l1").item() == pytest.approx(expected_l1, rel=1e-6)
    model = ReadoutForDepthEstimation(readout_config("depth", depth_loss_type="log_l2", depth_mean=1.5))
    batch = make_batch("depth")
    output = model(**batch)
    assert output.loss.item() == pytest.approx(log_depth_loss(output.predicted_depth, batch["depth"]).item())
    with pytest.raises(ValueError, match="depth_loss_type"):
        readout_config("depth", depth_loss_type="l1")


def test_feature_position_embedding_is_added_to_pixel_and_cached_features():
    model = ReadoutForPointTracking(readout_config("points", feature_position_embedding=True)).eval()
    tokens = (SIZE // 8) ** 2
    assert model.feature_position_embedding.shape == (tokens, 16)
    assert model.feature_position_embedding.abs().sum() > 0  # initialised, not left at zero
    batch = make_batch("points")
    pixels = batch.pop("pixel_values")
    features = model.extract_features(pixels)
    with torch.no_grad():
        # The untrained offset output is zero (tracks = query points); give it weights so features matter.
        model.readout.classifier.weight.normal_(std=0.1)
        from_pixels = model(pixel_values=pixels, **batch)
        from_cache = model(features=features, **batch)
        model.feature_position_embedding.zero_()
        without = model(features=features, **batch)
    torch.testing.assert_close(from_pixels.tracks, from_cache.tracks)
    assert not torch.allclose(from_cache.tracks, without.tracks)
    with pytest.raises(ValueError, match="tokens per frame"):
        model(features=features[:, :, :1], **batch)


def test_untrained_point_head_is_the_stay_at_query_baseline():
    """Zero offset output and positive visibility/certainty logits: tracks stay at the query, predicted visible."""
    batch = make_batch("points")
    for options in ({}, {"point_query_features": True, "point_offset_scale": 0.1}, {"point_frames_per_query": 2}):
        model = ReadoutForPointTracking(readout_config("points", **options)).eval()
        with torch.no_grad():
            out = model(**batch)
        query_xy = batch["query_points"][..., [2, 1]].unsqueeze(2).expand_as(out.tracks)
        torch.testing.assert_close(out.tracks, query_xy, atol=1e-5, rtol=0)
        assert not out.occluded.any()


def test_point_query_features_sample_the_query_frame_token_grid():
    # 2 frames of a 2x2 token grid over a 16x16 frame (8 px tokens); token k of frame f holds a one-hot pattern.
    features = torch.zeros(1, 2, 4, 8)
    for frame in range(2):
        for token in range(4):
            features[0, frame, token, frame * 4 + token] = 1.0
    # (t, y, x) normalised: frame 1 at the centre of token 2 (row 1, col 0), frame 0 at the centre of token 1.
    normalised = torch.tensor([[[1.0, 0.75, 0.25], [0.0, 0.25, 0.75]]])
    sampled = ReadoutForPointTracking.query_point_features(features, normalised, 16, 16)
    expected = torch.nn.functional.layer_norm(features[0, [1, 0], [2, 1]], (8,))
    torch.testing.assert_close(sampled[0], expected)
    with pytest.raises(ValueError, match="token grid"):
        ReadoutForPointTracking.query_point_features(features[:, :, :3], normalised, 16, 16)


def test_point_queries_per_chunk_see_only_their_frames():
    """point_frames_per_query=k: one query per track and k-frame chunk, attending only to that chunk's features."""
    batch = make_batch("points")
    model = ReadoutForPointTracking(readout_config("points", point_frames_per_query=2)).eval()
    torch.nn.init.normal_(model.readout.classifier.weight, std=0.1)  # leave the stay-at-query start
    features = model.extract_features(batch["pixel_values"])
    with torch.no_grad():
        out = model(features=features, query_points=batch["query_points"])
        changed = features.clone()
        changed[:, 2:] += torch.randn_like(changed[:, 2:])  # only the second chunk of the 4 frames
        other = model(features=changed, query_points=batch["query_points"])
    assert out.tracks.shape == (BATCH, batch["query_points"].shape[1], FRAMES, 2)
    torch.testing.assert_close(other.tracks[:, :, :2], out.tracks[:, :, :2])  # first chunk untouched
    assert not torch.allclose(other.tracks[:, :, 2:], out.tracks[:, :, 2:])
    # The chunk's time is in its query: identical features in both chunks still give different outputs per chunk.
    same = features[:, :2].repeat(1, 2, 1, 1)
    with torch.no_grad():
        tiled = model(features=same, query_points=batch["query_points"])
    assert not torch.allclose(tiled.tracks[:, :, :2], tiled.tracks[:, :, 2:])
    loss = ReadoutForPointTracking(readout_config("points", point_frames_per_query=2))(**batch).loss
    loss.backward()
    with pytest.raises(ValueError, match="must divide"):
        ReadoutForPointTracking(readout_config("points", point_frames_per_query=3))
    with pytest.raises(ValueError, match="point_frames_per_query"):
        readout_config("points", point_frames_per_query=-1)


# transformers conventions: shared outputs, hidden states / attentions, Auto classes, input embeddings -----------------


def test_task_outputs_are_the_shared_ones():
    from rep4d.modeling.outputs import BoxTrackingOutput, DepthEstimationOutput, PointTrackingOutput

    torch.manual_seed(0)
    expected = {"points": PointTrackingOutput, "boxes": BoxTrackingOutput, "depth": DepthEstimationOutput}
    for task, output_class in expected.items():
        out = READOUT_CLASSES[task](readout_config(task)).eval()(**make_batch(task))
        assert type(out) is output_class, task


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_backbone_hidden_states_and_attentions_are_explicit_and_honoured(backbone):
    torch.manual_seed(0)
    config = readout_config("classification", backbone)
    config.backbone_config.num_hidden_layers = 4  # 4DS-2 reads its embeddings (readout depth 0.95): no block runs
    model = ReadoutForVideoClassification(config).eval()
    model.set_attn_implementation("eager")
    pixel_values = make_batch("classification")["pixel_values"]
    with torch.no_grad():
        plain = model(pixel_values)
        full = model(pixel_values, output_hidden_states=True, output_attentions=True)
        cached = model(features=model.extract_features(pixel_values), output_hidden_states=True)
    assert plain.hidden_states is None and plain.attentions is None
    torch.testing.assert_close(full.logits, plain.logits)
    layers = model.backbone.model.config.num_hidden_layers
    tokens = (FRAMES // 2) * (SIZE // 8) ** 2
    # The backbone's own hidden states (embeddings first) and attention maps, from the same single backbone pass.
    assert 3 <= len(full.hidden_states) <= layers + 1 and len(full.attentions) == len(full.hidden_states) - 1
    assert all(h.shape == (BATCH, tokens, 16) for h in full.hidden_states)
    assert full.attentions[0].shape == (BATCH, 2, tokens, tokens)
    torch.testing.assert_close(full.attentions[0].sum(-1), torch.ones(BATCH, 2, tokens))
    with torch.no_grad():
        direct = model.backbone.model(pixel_values, output_hidden_states=True)
    torch.testing.assert_close(full.hidden_states[1], direct.hidden_states[1])
    # The config default is honoured; precomputed features have no backbone pass, hence no hidden states.
    model.config.output_hidden_states = True
    with torch.no_grad():
        assert model(pixel_values).hidden_states is not None
    assert cached.hidden_states is None


def test_input_embeddings_of_a_transformers_backbone():
    # On a 4DS backbone: test_model_get_set_embeddings in tests/conformance/test_readout_conformance.py.
    videomae = ReadoutForDepthEstimation(readout_config("depth", "videomae"))
    assert videomae.get_input_embeddings() is videomae.backbone.model.embeddings.patch_embeddings


def test_a_model_of_another_family_is_refused(tmp_path):
    # from_pretrained of every head on another family's folder: tests/conformance/model_checks.py.
    FourDSModel(tiny_fourds()).save_pretrained(tmp_path / "fourds")
    with pytest.raises(ValueError, match="expected a readout config.*'fourds'"):
        load_readout(tmp_path / "fourds")
    # A readout is no backbone: from_backbone names the families it accepts.
    readout = ReadoutForDepthEstimation(readout_config("depth"))
    with pytest.raises(ValueError, match=r"expected a video backbone .*fourds.*got a 'rep4d_readout' model"):
        ReadoutForPointTracking.from_backbone(readout)


def test_fourds_readout_holds_only_the_blocks_it_reads():
    # Issue 13, bug 3: at the default readout depth a 4DS-backed readout owned blocks above its readout layer that
    # got no gradient (plain DDP fails on its second step; gradient checkpointing tests fail "has no gradient").
    from rep4d.modeling.backbone_adapters import hidden_state_index

    config = readout_config("classification", freeze_backbone=False)
    config.backbone_config.num_hidden_layers = 4  # readout depth 0.95 reads hidden state 2: blocks 0-1 of 4
    model = ReadoutForVideoClassification(config).train()
    assert len(model.backbone.model.encoder.layers) == hidden_state_index(4, config.backbone_config.readout_depth) == 2
    model(**make_batch("classification")).loss.backward()
    no_gradient = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_gradient
    # An explicit feature layer above the readout layer (or counted from the end) gets the blocks it needs.
    for layer, blocks in ((1, 2), (2, 2), (3, 4), (-1, 4)):
        config.backbone_feature_layer = layer
        assert len(ReadoutForVideoClassification(config).backbone.model.encoder.layers) == blocks, layer


def test_fourds_readout_loads_a_checkpoint_holding_the_full_backbone(tmp_path):
    # Readouts saved before the fix (model_zoo/4ds-points) hold every backbone block: they load with no
    # unexpected / missing keys and give the same outputs; the higher blocks are expected-unused.
    import pickle

    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    torch.manual_seed(0)
    config = readout_config("points")
    config.backbone_config.num_hidden_layers = 4
    model = ReadoutForPointTracking(config).eval()
    model.save_pretrained(tmp_path)
    full = FourDSModel(config.backbone_config)
    full.load_state_dict(model.backbone.model.state_dict(), strict=False)
    weights = load_file(tmp_path / "model.safetensors")
    extra = {f"backbone.model.{k}": v for k, v in full.state_dict().items() if f"backbone.model.{k}" not in weights}
    assert extra and all(".encoder.layers.2." in k or ".encoder.layers.3." in k for k in extra)
    save_file({**weights, **extra}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    batch = make_batch("points")
    with torch.no_grad():
        expected = model(**batch)
    for loader in (AutoModel.from_pretrained, ReadoutForPointTracking.from_pretrained):
        loaded, info = loader(tmp_path, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(**batch).tracks, expected.tracks, rtol=0, atol=0)
    torch.testing.assert_close(load_readout(tmp_path).eval()(**batch).tracks, expected.tracks, rtol=0, atol=0)
    # A full backbone given to from_backbone (or to a plain load_state_dict): the readout takes the blocks it holds.
    readout = ReadoutForPointTracking.from_backbone(full, readout_num_params=16, readout_num_heads=2)
    assert len(readout.backbone.model.encoder.layers) == 2
    readout.backbone.model.load_state_dict(full.state_dict())
    with pytest.raises(RuntimeError, match="Missing key"):
        readout.backbone.model.load_state_dict({k: v for k, v in full.state_dict().items() if "layers.1." not in k})
    readout = pickle.loads(pickle.dumps(readout))  # the loading hook keeps the model picklable
    torch.testing.assert_close(readout.extract_features(batch["pixel_values"]), full(batch["pixel_values"]).readout_features)


def test_pose_head_reads_concatenated_end_frames_and_predicts_rotation_and_translation():
    from rep4d.modeling.losses import camera_pose_loss

    torch.manual_seed(0)
    model = ReadoutForCameraPose(readout_config("pose")).eval()
    batch = make_batch("pose")
    out = model(**batch)
    assert out.rotation.shape == (BATCH, 3, 3) and out.translation.shape == (BATCH, 3)
    # The paper's head: first and last frames concatenated along channels (2C inputs, one frame), 12 outputs.
    assert model.readout.k_proj.weight.shape[1] == 2 * model.feature_dim
    assert model.readout.temporal_embedding.shape[0] == 1 and model.readout.classifier.weight.shape[0] == 12
    # L2 on the whole 3x4 pose matrix [R | t].
    predicted = torch.cat([out.rotation, out.translation[..., None]], dim=-1)
    target = torch.cat([batch["camera_rotation"], batch["camera_translation"][..., None]], dim=-1)
    assert out.loss.item() == pytest.approx(((predicted - target) ** 2).sum((-1, -2)).mean().item(), rel=1e-6)
    assert out.loss == camera_pose_loss(out.rotation, out.translation, batch["camera_rotation"],
                                        batch["camera_translation"])
    # The translation is scored: another translation target gives another loss; a rotation-only target scores R.
    moved = model(**{**batch, "camera_translation": batch["camera_translation"] + 1.0}).loss
    assert moved > out.loss
    rotation_only = model(pixel_values=batch["pixel_values"], camera_rotation=batch["camera_rotation"]).loss
    assert rotation_only.item() == pytest.approx(((out.rotation - batch["camera_rotation"]) ** 2).sum((-1, -2))
                                                 .mean().item(), rel=1e-6)
    # Only the first and last frames are read.
    features = model.extract_features(batch["pixel_values"])
    middle = features.clone()
    middle[:, 1:-1] = torch.randn_like(middle[:, 1:-1])
    torch.testing.assert_close(model(features=middle).translation, model(features=features).translation)


def test_the_task_registry_is_the_one_task_list():
    """ReadoutConfig, the heads, the datasets and the metrics all read their tasks from the registry."""
    import dataclasses

    from rep4d.configuration.readout_tasks import READOUT_TASK_SPECS, READOUT_TASKS
    from rep4d.modeling import modeling_readout
    from rep4d.training.metrics import TASK_SCORERS
    from rep4d.training.readout_data import CLIP_VALIDATORS, EXAMPLE_TARGETS

    assert set(READOUT_CLASSES) == set(TASK_SCORERS) == set(CLIP_VALIDATORS) == set(EXAMPLE_TARGETS) == set(
        READOUT_TASKS)
    for name, spec in READOUT_TASK_SPECS.items():
        head = READOUT_CLASSES[name]
        assert head.__name__ == spec.head_class and head.task == name
        assert ReadoutConfig(task=name, num_labels=3).architectures == [spec.head_class]
        output_class = getattr(modeling_readout, spec.output_class)
        fields = [field.name for field in dataclasses.fields(output_class) if field.name != "loss"]
        # The Trainer's prediction tuples start with the fields the metrics read (named_fields relies on it).
        assert fields[: len(spec.output_fields)] == list(spec.output_fields), name
        assert set(spec.label_names) >= set(spec.clip_fields) - {"label"}
    with pytest.raises(ValueError, match="task must be one of"):
        ReadoutConfig(task="segmentation")


def test_losses_module_keeps_the_heads_losses_bit_identical():
    """The losses moved into rep4d.modeling.losses: each head's loss equals the formula it had inline."""
    torch.manual_seed(0)
    batch = make_batch("depth")
    out = ReadoutForDepthEstimation(readout_config("depth"))(**batch)
    valid = torch.isfinite(batch["depth"]) & (batch["depth"] > 0)
    squared = (out.predicted_depth.float() - torch.nan_to_num(batch["depth"].float())) ** 2
    assert torch.equal(out.loss, (squared * valid).sum() / valid.sum().clamp_min(1))

    batch = make_batch("boxes")
    out = ReadoutForBoxTracking(readout_config("boxes"))(**batch)
    weights = batch["box_visible"].float()
    squared = ((out.boxes - batch["boxes"]) ** 2).sum(-1)
    assert torch.equal(out.loss, (squared * weights).sum() / weights.sum().clamp_min(1))

    batch = make_batch("points")
    model = ReadoutForPointTracking(readout_config("points"))
    out = model(**batch)
    config = model.config
    to_raster = out.tracks.new_tensor([256.0 / SIZE, 256.0 / SIZE])
    visible = (~batch["occluded"]).float()
    distance = torch.sqrt((((out.tracks - batch["tracks"]) * to_raster) ** 2).sum(-1) + 1e-12)
    delta = config.point_huber_delta
    huber = torch.where(distance <= delta, 0.5 * distance**2, delta * (distance - 0.5 * delta))
    count = visible.sum().clamp_min(1)
    certain = (distance < config.point_certainty_threshold).float()
    expected = (
        config.point_position_loss_weight * ((huber * visible).sum() / count)
        + config.point_visibility_loss_weight * torch.nn.functional.binary_cross_entropy_with_logits(
            out.visibility_logits, visible)
        + config.point_certainty_loss_weight * (torch.nn.functional.binary_cross_entropy_with_logits(
            out.certainty_logits, certain, reduction="none") * visible).sum() / count
    )
    assert torch.equal(out.loss, expected)

    batch = make_batch("classification")
    out = ReadoutForVideoClassification(readout_config("classification"))(**batch)
    assert torch.equal(out.loss, torch.nn.functional.cross_entropy(out.logits.float(), batch["labels"]))
