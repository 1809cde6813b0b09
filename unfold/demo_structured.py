"""Part 3 of ``make demo``: the structured models of chapter 10 on small tasks generated on the
spot — a recursive net evaluating Boolean expressions (10.6), an echo state network's closed-form
readout predicting Mackey–Glass (10.8), a memory network copying a sequence (10.12), and an
encoder–decoder reversing one (10.4), trained by ``Trainer``, saved whole, restored and decoded
greedily."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from . import models
from .data.tasks import copy_sequences, logic_expressions, mackey_glass
from .evaluate import compile, evaluate
from .generate import greedy_decode
from .grad import grad
from .train import Adam, Trainer, init_params, load_model, save_model


def timed(run: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    result = run()
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def boolean_expressions(seed: int, steps: int = 300, say=print) -> dict:
    """Train on expressions of 1–3 operators (each bracketing one unfolding, 16 expressions of it
    along the batch axis), test on new ones of 4–6 operators (deeper trees never seen)."""
    rng = np.random.default_rng(seed)
    rn = models.recursive_net(5, 16, 2, inputs="tokens")
    params = init_params(rn, seed=seed)
    shapes = [models.Tree.random(k + 1, rng) for k in (1, 2, 2, 3, 3, 3, 3)]
    net = rn.unfold([logic_expressions(s.n_leaves - 1, 1, rng, s)[0] for s in shapes])
    program = compile([net.loss, *grad(net.loss, net.params)])
    optimizer, batch = Adam(0.02), 16
    for _ in range(steps):
        drawn = [logic_expressions(s.n_leaves - 1, batch, rng, s) for s in shapes]
        out = program({**params, "x": np.concatenate([d[1] for d in drawn]),
                       "y": np.stack([d[2] for d in drawn])})
        optimizer.update(params, {p.name: g / (batch * len(shapes))
                                  for p, g in zip(net.params, out[1:])})
    accuracy = {}
    for n_ops in (4, 5, 6):
        tests = [logic_expressions(n_ops, 100, rng) for _ in range(5)]
        held_out = rn.unfold([t for t, _, _ in tests])
        logits = evaluate([held_out.at("o", k) for k in range(1, 6)],
                          {**params, "x": np.concatenate([t[1] for t in tests])})
        accuracy[n_ops] = float(np.mean([np.mean(np.argmax(o, -1) == t[2])
                                         for o, t in zip(logits, tests)]))
    say(f"  recursive net (Fig. 10.14, 16 units), {steps} steps on expressions of 1–3 operators:"
        f" accuracy on new ones with 4 / 5 / 6 operators "
        + " / ".join(f"{a:.1%}" for a in accuracy.values()))
    return {"task": "evaluate Boolean expression trees", "steps": steps,
            "accuracy_by_operators": accuracy}


def echo_state_mackey_glass(seed: int, n: int = 200, steps: int = 2000, say=print) -> dict:
    """One-step-ahead prediction of Mackey–Glass (τ = 17): the first 3/4 of ``steps`` fit the
    readout in closed form (after a washout of 1/20), the rest test it; NRMSE = RMSE / std of
    the target."""
    series = mackey_glass(steps + 1)
    z = (series - series.mean()) / series.std()
    split, washout = 3 * steps // 4, steps // 20
    rec = models.echo_state(1, n, 1, spectral_radius=0.99, input_scale=0.3, seed=seed)
    started = time.perf_counter()
    readout = models.ridge_readout(rec, {"x": z[:split, None], "y": z[1:split + 1, None]},
                                   ridge=1e-6, washout=washout)
    fitted = time.perf_counter() - started
    o = np.stack(evaluate(rec.unfold(steps).over_time("o"), {"x": z[:steps, None], **readout}))
    target = z[1:steps + 1]
    nrmse = float(np.sqrt(np.mean((o[split:, 0] - target[split:]) ** 2)) /
                  np.std(target[split:]))
    say(f"  echo state network (section 10.8, {n} units, ρ(W) = 0.99): readout by ridge "
        f"regression over {split - washout} states in {fitted:.2f} s; Mackey–Glass one step "
        f"ahead, NRMSE {nrmse:.1e} on {steps - split} held-out steps")
    return {"task": "Mackey–Glass one step ahead", "units": n, "nrmse": nrmse,
            "ridge_seconds": round(fitted, 3)}


def copy_task(seed: int, steps: int = 300, length: int = 4, symbols: int = 4, say=print) -> dict:
    """Read ``length`` symbols, a delimiter, then reproduce them; loss per recalled symbol."""
    rec = models.memory_network(symbols + 2, 16, symbols + 2, cells=8, width=8, inputs="tokens",
                                outputs=range(length + 2, 2 * length + 2))
    params = init_params(rec, seed=seed)
    trainer = Trainer(rec, params, Adam(0.01), clip=1.0)
    rng = np.random.default_rng(seed)
    batches = ({k: d[k] for k in ("x", "y")} for d in iter(
        lambda: copy_sequences(length, symbols, 32, rng), None))
    trainer.fit(batches, steps=steps, progress=False)
    test = copy_sequences(length, symbols, 500, np.random.default_rng(seed + 1))
    loss = trainer.gradients({"x": test["x"], "y": test["y"]})[0]
    say(f"  memory network (Fig. 10.18: controller of 16 units, 8 cells × 8, content "
        f"addressing), {steps} steps: copy task of {length} symbols, held-out loss {loss:.4f} "
        f"nats/symbol (chance {np.log(symbols):.2f})")
    return {"task": f"copy {length} of {symbols} symbols", "steps": steps, "loss": float(loss)}


def reversal(seed: int, out, steps: int = 300, length: int = 5, symbols: int = 5,
             say=print) -> dict:
    """Reverse ``length`` symbols: an encoder reads them, the decoder emits them backwards and
    then the end symbol (n_x = length, n_y = length + 1); teacher forcing in training, greedy
    decoding at test time — after the model was saved whole and restored."""
    end = start = symbols
    rng = np.random.default_rng(seed)

    def batch(size: int = 32) -> dict[str, np.ndarray]:
        x = rng.integers(0, symbols, (length, size))
        y = np.concatenate([x[::-1], np.full((1, size), end)])
        return {"x": x, "y": y, "y_prev": models.teacher_forced(y, start)}

    model = models.encoder_decoder(symbols, 32, symbols + 1, inputs="tokens", variant="common")
    trainer = Trainer(model, init_params(model, seed=seed), Adam(0.02), clip=1.0)
    trainer.fit(iter(batch, None), steps=steps, progress=False)
    path = save_model(out / "seq2seq.npz", trainer)
    restored = load_model(path)                           # rebuilt from its builder's arguments
    test = batch(500)
    decoded = greedy_decode(restored.rec, restored.params, test["x"], start=start, end=end,
                            max_length=length + 3)
    exact = float(np.mean([d == list(test["x"][::-1, i]) for i, d in enumerate(decoded)]))
    say(f"  encoder–decoder (Fig. 10.12, GRUs of 32 units, context C = h(n_x)), {steps} steps: "
        f"reverses {length} symbols (n_x = {length}, n_y = {length + 1}) exactly for "
        f"{exact:.1%} of 500 new sequences, decoded greedily after save_model / load_model")
    return {"task": f"reverse {length} of {symbols} symbols", "steps": steps,
            "exact": exact, "model_file": str(path)}


def structured(seed: int, out, steps: int = 300, esn_units: int = 200, esn_steps: int = 2000,
               say=print) -> dict:
    """Every experiment of part 3 (``steps`` training steps each), timed."""
    runs = {"recursive": lambda: boolean_expressions(seed, steps, say=say),
            "echo_state": lambda: echo_state_mackey_glass(seed, esn_units, esn_steps, say=say),
            "memory": lambda: copy_task(seed, steps, say=say),
            "encoder_decoder": lambda: reversal(seed, out, steps + 100, say=say)}
    results = {}
    for name, run in runs.items():
        results[name] = timed(run)
        say(f"    ({results[name]['seconds']:.1f} s)")
    return results
