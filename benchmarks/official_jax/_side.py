"""What every official-side script shares: its spec, the official checkout on ``sys.path``, and the timing report.

The scripts in this folder are run by ``benchmarks/bench_official.py`` with the *official* environment's python
(``--official-python``: jax, flax, kauldron; never rep4d's environment) as ``python SCRIPT SPEC_JSON``. Each builds the
official model of one workload with random weights, calls it once as a warm-up (XLA compilation), then hands a
zero-argument ``call`` and its architecture summary to :func:`time_and_report`, which prints one JSON line.
"""

import json
import os
import sys
import time


def load_spec() -> dict:
    """The workload spec (argv[1]) with the official checkout (``official_src``) put first on ``sys.path``."""
    spec = json.loads(sys.argv[1])
    if spec.get("official_src"):
        sys.path.insert(0, spec["official_src"])
    return spec


def time_and_report(call, arch: dict, spec: dict) -> None:
    """Time ``call`` (already warmed up) ``spec["repeats"]`` times and print the side's JSON report."""
    import jax

    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times, "jax": jax.__version__, "backend": jax.default_backend(),
                      "threads": os.cpu_count(), "arch": arch}))


def count_params(tree) -> int:
    import jax

    return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))


def to_bf16(tree):
    """``tree`` with every floating-point leaf (parameters, inputs, states) cast to bfloat16; keys and integers kept.

    The official side's bf16: flax modules without an explicit ``dtype`` compute in their inputs' and parameters'
    dtype, so bf16 parameters and inputs run the model in bf16 (XLA's CPU backend may still lower some dots to f32).
    """
    import jax
    import jax.numpy as jnp

    def cast(leaf):
        return leaf.astype(jnp.bfloat16) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree_util.tree_map(cast, tree)


def adamw_step_call(loss_fn, params, train: dict, *inputs, bf16: bool = False):
    """A zero-argument call running one training step: ``loss_fn(params, *inputs, key)``, its gradient and an
    ``optax.adamw`` update (``train``'s learning rate and weight decay; b1 0.9, b2 0.999, eps 1e-8 as
    ``torch.optim.AdamW``), all in one ``jax.jit`` with parameters, optimiser state and key donated. Each call gets a
    fresh key (masking, pixel offsets) and returns the step's loss, ready.

    ``bf16``: mixed precision as in JAX training code (and as rep4d's bf16 autocast): float32 master parameters and
    optimiser state, the forward and backward on bf16 copies of the parameters and inputs (:func:`to_bf16`), the loss
    returned in float32."""
    import jax
    import jax.numpy as jnp
    import optax

    optimizer = optax.adamw(train["learning_rate"], b1=0.9, b2=0.999, eps=1e-8, weight_decay=train["weight_decay"])
    if bf16:
        full_precision_loss = loss_fn

        def loss_fn(params, *inputs_and_key):
            return full_precision_loss(to_bf16(params), *to_bf16(inputs_and_key)).astype(jnp.float32)

    def step(params, opt_state, key, *inputs):
        key, step_key = jax.random.split(key)
        loss, grads = jax.value_and_grad(loss_fn)(params, *inputs, step_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, loss

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    state = [params, optimizer.init(params), jax.random.key(3)]

    def call():
        *state[:], loss = step(*state, *inputs)
        return jax.block_until_ready(loss)

    return call
