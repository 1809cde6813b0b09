"""Part 3 of ``make demo``: the structured models of chapter 10 on small tasks generated on the
spot — a recursive net evaluating Boolean expressions (10.6), trained by ``Trainer`` on batches of
trees of different shapes, an echo state network's closed-form readout predicting Mackey–Glass
(10.8), a memory network copying a sequence (10.12), and an encoder–decoder reversing sequences
of different lengths (10.4), trained by ``Trainer`` on padded batches, saved whole, restored and
decoded greedily."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from . import models
from .data.tasks import copy_sequences, logic_expressions, mackey_glass
from .evaluate import evaluate
from .generate import greedy_decode
from .train import Adam, Trainer, init_params, load_model, save_model


def timed(run: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    result = run()
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def boolean_expressions(seed: int, steps: int = 300, say=print) -> dict:
    """Train with ``Trainer`` on forests of expressions of 1–3 operators: every batch is 7 trees
    of different shapes (16 expressions of each shape along the batch axis), its shapes drawn
    from a pool of 12 forests — the trainer compiles one program per forest and reuses it. Test
    on new expressions of 4–6 operators (deeper trees never seen)."""
    rng = np.random.default_rng(seed)
    rn = models.recursive_net(5, 16, 2, inputs="tokens")
    trainer = Trainer(rn, init_params(rn, seed=seed), Adam(0.02))
    pool = [[models.Tree.random(int(k) + 1, rng) for k in rng.integers(1, 4, 7)]
            for _ in range(12)]

    def batch(size: int = 16) -> dict:
        drawn = [logic_expressions(s.n_leaves - 1, size, rng, s)
                 for s in pool[rng.integers(len(pool))]]
        return {"trees": [d[0] for d in drawn], "x": np.concatenate([d[1] for d in drawn]),
                "y": np.stack([d[2] for d in drawn])}
    trainer.fit(iter(batch, None), steps=steps, progress=False)
    accuracy = {}
    for n_ops in (4, 5, 6):
        tests = [logic_expressions(n_ops, 100, rng) for _ in range(5)]
        held_out = rn.unfold([t for t, _, _ in tests])
        logits = evaluate([held_out.at("o", k) for k in range(1, 6)],
                          {**trainer.params, "x": np.concatenate([t[1] for t in tests])})
        accuracy[n_ops] = float(np.mean([np.mean(np.argmax(o, -1) == t[2])
                                         for o, t in zip(logits, tests)]))
    say(f"  recursive net (Fig. 10.14, 16 units), {steps} Trainer steps on forests of 7 "
        f"expressions of 1–3 operators (shapes differ within a batch): accuracy on new ones "
        f"with 4 / 5 / 6 operators " + " / ".join(f"{a:.1%}" for a in accuracy.values()))
    return {"task": "evaluate Boolean expression trees", "steps": steps,
            "final_train_loss": float(np.mean(trainer.history.losses[-20:])),
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


def reversal(seed: int, out, steps: int = 500, lengths: tuple[int, int] = (2, 5),
             symbols: int = 5, say=print) -> dict:
    """Reverse 2–5 symbols: an encoder reads them, the decoder emits them backwards and then
    the end symbol. Every batch mixes lengths — inputs padded to 5 steps, outputs to 6, with the
    masks of ``EncoderDecoder.masks`` — and is trained by ``Trainer(mask=True)`` with teacher
    forcing; at test time greedy decoding of padded inputs (``x_lengths``) — after the model was
    saved whole and restored."""
    end = start = symbols
    low, high = lengths
    rng = np.random.default_rng(seed)

    def batch(size: int = 32) -> tuple[dict[str, np.ndarray], np.ndarray]:
        n = rng.integers(low, high + 1, size)
        x = rng.integers(0, symbols, (high, size))
        y = np.full((high + 1, size), end)
        for i, k in enumerate(n):
            y[:k, i] = x[:k, i][::-1]
        return {"x": x, "y": y, "y_prev": models.teacher_forced(y, start),
                **models.EncoderDecoder.masks(n, n + 1, n_x=high, n_y=high + 1)}, n

    model = models.encoder_decoder(symbols, 32, symbols + 1, inputs="tokens", variant="common")
    trainer = Trainer(model, init_params(model, seed=seed), Adam(0.02), clip=1.0, mask=True)
    trainer.fit(iter(lambda: batch()[0], None), steps=steps, progress=False)
    path = save_model(out / "seq2seq.npz", trainer)
    restored = load_model(path)                           # rebuilt from its builder's arguments
    test, n = batch(500)
    decoded = greedy_decode(restored.rec, restored.params, test["x"], start=start, end=end,
                            max_length=high + 3, x_lengths=n)
    exact = float(np.mean([d == list(test["x"][:k, i][::-1])
                           for i, (d, k) in enumerate(zip(decoded, n))]))
    say(f"  encoder–decoder (Fig. 10.12, GRUs of 32 units, context C = h(n_x)), {steps} steps "
        f"on padded batches of {low}–{high} symbols: reverses {exact:.1%} of 500 new sequences "
        f"exactly, decoded greedily after save_model / load_model")
    return {"task": f"reverse {low}–{high} of {symbols} symbols", "steps": steps,
            "exact": exact, "model_file": str(path)}


def structured(seed: int, out, steps: int = 300, esn_units: int = 200, esn_steps: int = 2000,
               say=print) -> dict:
    """Every experiment of part 3 (``steps`` training steps each), timed."""
    runs = {"recursive": lambda: boolean_expressions(seed, steps, say=say),
            "echo_state": lambda: echo_state_mackey_glass(seed, esn_units, esn_steps, say=say),
            "memory": lambda: copy_task(seed, steps, say=say),
            "encoder_decoder": lambda: reversal(seed, out, steps + 200, say=say)}
    results = {}
    for name, run in runs.items():
        results[name] = timed(run)
        say(f"    ({results[name]['seconds']:.1f} s)")
    return results
