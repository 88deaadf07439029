"""Official MooG package rows (``moog-decode-{128,256}``, ``train-moog``), built from ``moog/`` of the official
checkout (``modules.py``, ``attention.py``, ``pos_embeddings.py``, ``initializers.py``, ``conv.py``) the way
``moog/configs/movi.py`` builds its model; the konfig is not used, the same classes are instantiated in plain Python.
Run by ``bench_official.py`` with ``--official-python``; see ``_side.py``.

* ``moog-decode-*``: the released pixel decoder, ``SRTDecoder`` with a cross-attention-only ``ImprovedTransformer``
  (decoder qkv / heads / MLP / layers and ``SampleFourierEmbedding(concat)`` bases from the released config in
  ``spec["config"]``), eval path with subsample factor 1: every pixel of one (H, W) frame is a query, all at once
  (rep4d decodes 4096 queries at a time; the result is the same). Input: (1, 1, 1024, 512) states; output
  (1, 1, H, W, 3), as rep4d's ``decode`` (channels-last).
* ``train-moog``: one training step of ``modules.Moog`` (configs/movi.py's structure: ``SRTEncoder`` = ``ConvNet`` +
  ``FourierEmbedding(project_add)`` + a 0-layer ``ImprovedTransformer`` (Dense + LayerNorm), ``RandomStateInit``,
  LayerNorm(1e-4, no bias) correction norm, corrector / predictor ``ImprovedTransformer``, ``SRTDecoder`` with
  training subsample factor, ``use_loss_gradient=False``) at the sizes of rep4d's training preset
  (``spec["train"]["config"]``), in training mode, with the config's loss ``kd.losses.L2(preds.video_predicted,
  preds.subsampled_targets_predicted)``: the mean of the squared error over every element (batch, frames, decoded
  rows and columns, channels), exactly what rep4d's ``((decoded - targets) ** 2).mean()`` averages over. Optimizer:
  ``optax.adamw`` per the benchmark (not movi.py's warm-up cosine schedule, b2 0.95 and grad clipping: rep4d's side
  has neither). The whole step is one ``jax.jit``.
  ``Moog.frame_step`` also differentiates the decoder loss w.r.t. the predicted state (the inner gradient); with
  ``use_loss_gradient=False`` (movi.py) that gradient is unused and XLA removes it, as rep4d computes none.
"""
from _side import adamw_step_call, count_params, load_spec, time_and_report, to_bf16

spec = load_spec()
import jax
import jax.numpy as jnp
from flax import linen as nn
from kauldron import kd
from moog import attention, conv, initializers, modules, pos_embeddings


def decoder(config: dict, subsample_factor: int, eval_subsample_factor: int) -> modules.SRTDecoder:
    return modules.SRTDecoder(
        transformer=attention.ImprovedTransformer(
            qkv_size=config["decoder_qkv_size"], num_heads=config["decoder_num_heads"],
            mlp_size=config["decoder_mlp_size"], num_layers=config["decoder_num_layers"], cross_attn_only=True),
        pos_embedding=pos_embeddings.SampleFourierEmbedding(num_fourier_bases=config["dec_fourier_bases"],
                                                            update_type="concat"),
        subsample_factor=subsample_factor,
        eval_subsample_factor=eval_subsample_factor,
    )


def moog(config: dict) -> modules.Moog:
    assert config["posenc_mode"] == "project_add" and config["encoder_output_size"] is None, config
    assert config["state_norm_position"] == "end", config
    kernel = config["conv_kernel_size"]
    return modules.Moog(
        encoder=modules.SRTEncoder(
            backbone=conv.ConvNet(features=tuple(config["conv_features"]),
                                  kernel_sizes=((kernel, kernel),) * len(config["conv_features"]),
                                  strides=tuple((s, s) for s in config["conv_strides"]), normalize_output=True),
            transformer=attention.ImprovedTransformer(
                qkv_size=config["corrector_qkv_size"], num_heads=config["corrector_num_heads"],
                mlp_size=config["corrector_mlp_size"], hidden_size=config["encoder_hidden_size"], num_layers=0),
            pos_embedding=pos_embeddings.FourierEmbedding(num_fourier_bases=config["enc_fourier_bases"],
                                                          axes=(-3, -2), update_type="project_add"),
        ),
        initializer=initializers.RandomStateInit(shape=(config["num_tokens"], config["token_size"]),
                                                 random_init_scale=config["state_init_scale"]),
        state_grad_projector=nn.Dense(config["token_size"]),  # as movi.py; unused (no params) without loss gradient
        correction_layer_norm=nn.LayerNorm(epsilon=config["state_ln_eps"], use_scale=True, use_bias=False),
        corrector=attention.ImprovedTransformer(
            qkv_size=config["corrector_qkv_size"], num_heads=config["corrector_num_heads"],
            mlp_size=config["corrector_mlp_size"], num_layers=config["corrector_num_layers"]),
        predictor=attention.ImprovedTransformer(
            qkv_size=config["predictor_qkv_size"], num_heads=config["predictor_num_heads"],
            mlp_size=config["predictor_mlp_size"], num_layers=config["predictor_num_layers"]),
        decoder=decoder(config, config["train_subsample_factor"], config["eval_subsample_factor"]),
        stop_gradient_prob=None,
        use_loss_gradient=False,
    )


if spec["workload"].startswith("moog-decode"):
    config, size = spec["config"], spec["size"]
    model = decoder(config, config["train_subsample_factor"], 1)
    states = jax.random.normal(jax.random.key(1), (1, 1, config["num_tokens"], config["token_size"]), jnp.float32)
    targets = jnp.zeros((1, 1, size, size, config["decoder_output_channels"]), jnp.float32)
    params = model.init({"params": jax.random.key(0), "default": jax.random.key(2)}, states, targets,
                        is_training_property=False)
    num_params = count_params(params)
    decode = jax.jit(lambda p, s, t: model.apply(p, inputs=s, targets=t, is_training_property=False,
                                                 rngs={"default": jax.random.key(3)})[0])
    if spec["bf16"]:
        params, states, targets = to_bf16((params, states, targets))
    compiled = decode.lower(params, states, targets).compile()

    def call():
        return jax.block_until_ready(compiled(params, states, targets))

    output = call()
    arch = {"params": num_params, "hidden": config["token_size"], "tokens": config["num_tokens"],
            "output_shape": list(output.shape), "output_dtype": str(output.dtype)}
elif spec["workload"] == "train-moog":
    train = spec["train"]
    config = train["config"]
    frames, height, width = train["clip"]
    model = moog(config)
    video = jax.random.uniform(jax.random.key(1), (train["batch"], frames, height, width, 3), jnp.float32)
    params = model.init({"params": jax.random.key(0), "default": jax.random.key(2)}, video, {},
                        is_training_property=True)
    num_params = count_params(params)
    l2 = kd.losses.L2(preds="preds.video_predicted", targets="preds.subsampled_targets_predicted")

    def loss_fn(p, v, rng):
        preds = model.apply(p, v, {}, is_training_property=True, rngs={"default": rng})
        return l2(preds=preds["video_predicted"], targets=preds["subsampled_targets_predicted"])

    call = adamw_step_call(loss_fn, params, train, video, bf16=spec["bf16"])
    output = call()
    arch = {"params": num_params, "hidden": config["token_size"], "clip": train["clip"], "batch": train["batch"],
            "output_shape": list(output.shape), "output_dtype": str(output.dtype)}
else:
    raise ValueError(f"moog_package.py has no workload {spec['workload']!r}")

time_and_report(call, arch, spec)
