"""``make demo``: chapter 10's networks learning, on data shipped with unfold (no downloads).

    python -m unfold.demo [--out DIR] [--quick] [--seed N]

1. A character-level language model (an LSTM, exactly the book's eqs. 10.40–10.44) on the
   opening of Shakespeare's *Coriolanus*, trained by truncated BPTT over the text with the state
   carried from chunk to chunk: a gradient check of the first batch in float64, samples before
   and after training, the loss on held-out text.
2. A long-term dependency (section 10.7): read a symbol, then ``τ − 1`` distractors, and name
   the first symbol at the end (one output at the end, Fig. 10.5). The gated network learns it;
   the plain RNN of Fig. 10.3, same size, same initialisation scheme, same budget, stays at
   chance — and the gradient-norm profile ``‖∇h(t) L‖`` over t shows why.
3. The rest of the chapter, on tasks generated on the spot: a recursive net evaluating Boolean
   expressions deeper than any it was trained on, an echo state network's closed-form readout
   predicting Mackey–Glass, a memory network learning to copy, an encoder–decoder learning to
   reverse sequences of different lengths (padded batches), saved whole and restored
   (``unfold.demo_structured``).
4. Everything it measured into one folder: loss curves and gradient profiles as CSV and JSON,
   the trained parameters, samples, plots (matplotlib) and drawings (``viz``) when available.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import dynamics, models
from .evaluate import evaluate
from .data import Vocabulary, load_text
from .demo_structured import structured
from .generate import sample
from .train import Adam, Trainer, init_params, load_params, save_params, stream_chunks


@dataclass(frozen=True)
class Config:
    """Sizes and budgets (``--quick`` shrinks them to a smoke test of a few seconds)."""

    lm_hidden: int = 64
    lm_chunk: int = 32
    lm_batch: int = 32
    lm_steps: int = 600
    lm_lr: float = 1e-2
    recall_steps_tau: int = 100
    recall_symbols: int = 4
    recall_distractors: int = 4
    recall_hidden: int = 32
    recall_batch: int = 32
    recall_train_steps: int = 150
    recall_lr: float = 5e-3
    gate_bias: float = 3.0
    sample_length: int = 300
    structured_steps: int = 300
    esn_units: int = 200
    esn_steps: int = 2000


QUICK = Config(lm_hidden=16, lm_chunk=8, lm_batch=8, lm_steps=20, recall_steps_tau=12,
               recall_hidden=8, recall_batch=8, recall_train_steps=10, sample_length=60,
               structured_steps=20, esn_units=20, esn_steps=400)


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(text)
    say("─" * len(text))


# --- 1. a character-level language model ----------------------------------------------------

def char_lm(cfg: Config, out: Path, seed: int) -> dict:
    text = load_text("coriolanus")
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train, valid = ids[:split], ids[split:]
    say(f"text: the opening of Coriolanus, {len(text):,} characters, {len(vocab)} symbols; "
        f"{len(train):,} for training, {len(valid):,} held out")
    rec = models.language_model(len(vocab), cfg.lm_hidden, cell="lstm", variant="book",
                                carry=True)
    params = init_params(rec, seed=seed)
    trainer = Trainer(rec, params, Adam(cfg.lm_lr), clip=5.0, carry=True)
    say(f"model: LSTM language model (the book's variant), {cfg.lm_hidden} units, "
        f"{sum(p.size for p in params.values()):,} parameters "
        f"({', '.join(sorted(rec.params))}); truncated BPTT over chunks of {cfg.lm_chunk} "
        f"characters × {cfg.lm_batch} parallel streams, state carried between chunks")

    first = next(stream_chunks(train[:-1], train[1:], cfg.lm_chunk, cfg.lm_batch))
    check = trainer.check_gradients(first, samples=16, seed=seed)
    say(f"gradient check of the first batch (float64, central differences at "
        f"{check['checked']} random parameter elements): max relative error "
        f"{check['max_rel_error']:.2e}, max absolute error {check['max_abs_error']:.2e}")
    if check["max_rel_error"] > 1e-4:
        raise SystemExit("gradient check failed: reverse mode disagrees with finite differences")

    prime = vocab.encode("MARCIUS:\n")
    rng = np.random.default_rng(seed)
    before = vocab.decode(sample(rec, params, length=cfg.sample_length // 3, prime=list(prime),
                                 rng=rng))
    valid_before = trainer.evaluate_stream(valid[:-1], valid[1:], chunk=cfg.lm_chunk)
    say(f"\nsample before training (held-out loss {valid_before:.3f} nats/char):")
    say(indent("MARCIUS:\n" + before))

    started = time.perf_counter()
    history = trainer.fit_stream(train[:-1], train[1:], chunk=cfg.lm_chunk, batch=cfg.lm_batch,
                                 steps=cfg.lm_steps, desc="char LM")
    seconds = time.perf_counter() - started
    valid_after = trainer.evaluate_stream(valid[:-1], valid[1:], chunk=cfg.lm_chunk)
    after = vocab.decode(sample(rec, params, length=cfg.sample_length, prime=list(prime),
                                temperature=0.7, rng=rng))
    say(f"\ntrained {len(history)} steps in {seconds:.1f} s ({len(history) / seconds:.1f} "
        f"steps/s); training loss {history.smoothed(50):.3f} nats/char (last 50 steps), "
        f"held-out loss {valid_after:.3f} nats/char = {valid_after / np.log(2):.2f} bits/char "
        f"(uniform guess: {np.log(len(vocab)):.2f} nats/char)")
    say("sample after training (temperature 0.7):")
    say(indent("MARCIUS:\n" + after))

    path = save_params(out / "char_lm.npz", params)
    reloaded = load_params(path, rec)
    assert all(np.array_equal(reloaded[k], params[k]) for k in params)
    history.to_csv(out / "char_lm_history.csv")
    (out / "samples.txt").write_text(
        f"before training:\nMARCIUS:\n{before}\n\nafter {len(history)} steps "
        f"(temperature 0.7):\nMARCIUS:\n{after}\n", encoding="utf-8")
    return {"model": "LSTM (book variant) language model", "hidden": cfg.lm_hidden,
            "steps": len(history), "seconds": round(seconds, 2),
            "train_loss": history.smoothed(50), "valid_loss_before": valid_before,
            "valid_loss_after": valid_after, "gradient_check": check,
            "sample_before": before, "sample_after": after, "params_file": str(path),
            "history": history.to_json()}


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# --- 2. a long-term dependency ----------------------------------------------------------------

def recall_batch(cfg: Config, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """x(1) is one of ``recall_symbols`` symbols, x(2…τ) distractors; y(τ) = x(1)."""
    k, tau = cfg.recall_symbols, cfg.recall_steps_tau
    x = rng.integers(k, k + cfg.recall_distractors, (tau, batch))
    x[0] = rng.integers(0, k, batch)
    y = np.zeros((tau, batch), np.int64)
    y[-1] = x[0]
    return {"x": x, "y": y}


def recall(cfg: Config, out: Path, seed: int) -> tuple[dict, dict]:
    k, tau = cfg.recall_symbols, cfg.recall_steps_tau
    say(f"task: read one of {k} symbols, then {tau - 1} distractors; at step τ = {tau} name the "
        f"first symbol (one output, at the end: Fig. 10.5). Chance: log {k} = {np.log(k):.3f} "
        f"nats, accuracy {1 / k:.0%}.")
    say(f"both nets: {cfg.recall_hidden} units, orthogonal recurrent weights, Adam "
        f"{cfg.recall_lr}, gradient norm clipped at 1, {cfg.recall_train_steps} steps of "
        f"{cfg.recall_batch} sequences; the GRU's update-gate bias starts at "
        f"{cfg.gate_bias:g} (keep the state)")
    n_in = k + cfg.recall_distractors
    builders = {"rnn": lambda: models.rnn_single_output(n_in, cfg.recall_hidden, k,
                                                        inputs="tokens"),
                "gru": lambda: models.gru(n_in, cfg.recall_hidden, k, variant="common",
                                          outputs="last", inputs="tokens")}
    test = recall_batch(cfg, 512, np.random.default_rng(seed + 1))
    probe = recall_batch(cfg, 64, np.random.default_rng(seed + 2))
    results, profiles, trained = {}, {}, {}
    for name, build in builders.items():
        rec = build()
        params = init_params(rec, seed=seed, biases={"b_u": cfg.gate_bias})
        net = rec.unfold(tau)
        profiles[f"{name}_init"] = dynamics.hidden_gradient_norms(net, {**params, **probe})
        trainer = Trainer(rec, params, Adam(cfg.recall_lr), clip=1.0)
        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        history = trainer.fit(iter(lambda: recall_batch(cfg, cfg.recall_batch, rng), None),
                              cfg.recall_train_steps, desc=f"recall {name.upper()}")
        seconds = time.perf_counter() - started
        profiles[f"{name}_trained"] = dynamics.hidden_gradient_norms(net, {**params, **probe})
        loss, o = evaluate([net.loss, net.at("o", tau)], {**params, **test})
        accuracy = float(np.mean(o.argmax(-1) == test["y"][-1]))
        results[name] = {"test_loss": float(loss) / len(test["y"][-1]), "accuracy": accuracy,
                         "train_loss": history.smoothed(20), "seconds": round(seconds, 2),
                         "spectral_radius_W": dynamics.spectral_radius(params["W"]),
                         "history": history.to_json()}
        history.to_csv(out / f"recall_{name}_history.csv")
        trained[name] = (rec, params)
        say(f"  {name.upper()}: test loss {results[name]['test_loss']:.3f} nats, accuracy "
            f"{accuracy:.1%} on 512 new sequences ({seconds:.1f} s); spectral radius of W "
            f"{results[name]['spectral_radius_W']:.2f}")
    ratio = {name: float(profiles[f"{name}_trained"][0] / profiles[f"{name}_trained"][-1])
             for name in builders}
    say(f"‖∇h(1) L‖ / ‖∇h(τ) L‖ after training: RNN {ratio['rnn']:.1e}, GRU "
        f"{ratio['gru']:.1e} (how much of the gradient from the loss at τ is left at step 1)")
    with open(out / "gradient_profile.csv", "w") as f:
        f.write("t," + ",".join(profiles) + "\n")
        for t in range(tau):
            f.write(f"{t + 1}," + ",".join(f"{profiles[c][t]:.6e}" for c in profiles) + "\n")
    return {"task": f"first-symbol recall over τ = {tau}", "results": results,
            "gradient_norm_ratio_first_to_last": ratio,
            "gradient_profile": {k: v.tolist() for k, v in profiles.items()}}, trained


# --- 3. pictures ------------------------------------------------------------------------------

def plots(summary: dict, out: Path) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    lm = summary["char_lm"]["history"]
    axes[0].plot([r["step"] for r in lm], [r["loss"] for r in lm], lw=0.8)
    axes[0].set(title="character LM (LSTM): training loss", xlabel="step", ylabel="nats/char")
    for name, result in summary["recall"]["results"].items():
        h = result["history"]
        axes[1].plot([r["step"] for r in h], [r["loss"] for r in h], label=name.upper())
    axes[1].axhline(np.log(summary["config"]["recall_symbols"]), ls="--", c="grey",
                    label="chance")
    axes[1].set(title=summary["recall"]["task"], xlabel="step", ylabel="loss (nats)")
    axes[1].legend()
    for name, values in summary["recall"]["gradient_profile"].items():
        model, when = name.split("_")
        axes[2].semilogy(range(1, len(values) + 1), values, label=f"{model.upper()}, {when}",
                         color="C0" if model == "rnn" else "C1",
                         ls="--" if when == "init" else "-")
    axes[2].set(title="‖∇h(t) L‖ (section 10.7)", xlabel="t", ylabel="norm (log scale)")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    return ["curves.png"]


def drawings(cfg: Config, out: Path, trained: dict, seed: int) -> list[str]:
    """The book-view drawings of ``viz``, if it is installed (``dot`` gives SVG, else DOT): the
    folded LSTM language model, and the trained recall networks side by side over the task's τ
    (middle steps elided, as the drawing says), each state coloured by ``‖∇h(t) L‖`` on one
    scale shared by both."""
    try:
        import viz
        from viz.output import have_dot
    except Exception:                       # viz is optional: unfold never depends on it
        return []
    suffixes = (".svg", ".png") if have_dot() else (".dot",)
    drawn = {"lstm_language_model_folded": viz.folded(models.language_model(8, 4, cell="lstm"))}
    steps, panels = cfg.recall_steps_tau, []
    batch = recall_batch(cfg, 1, np.random.default_rng(seed))
    for name, (rec, params) in trained.items():
        feed = {**params, "x": batch["x"][:, 0], "y": batch["y"][:, 0]}
        hide = tuple(n for n in rec.named if n == "a")     # (the RNN's pre-activation: its
        panels.append((name, rec, {"steps": steps, "max_steps": 8, "hide": hide,   # h only)
                                   "gradients": viz.gradient_norms(rec.unfold(steps), feed)}))
    with warnings.catch_warnings():         # (the drawing says which steps it shows)
        warnings.simplefilter("ignore", viz.ElidedStepsWarning)
        drawn["recall_gradients"] = viz.side_by_side("‖∇h(t) L‖, one colour scale", panels)
    for name, drawing in drawn.items():
        for suffix in suffixes:
            viz.save(drawing, out / f"{name}{suffix}")
    return [f"{name}{suffix}" for name in drawn for suffix in suffixes]


# --- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unfold.demo", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--out", default="demo-output", help="output folder (default: "
                        "./demo-output)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say(f"unfold demo — chapter 10 of Deep Learning, on numpy (pid {os.getpid()}, "
        f"{os.cpu_count()} cores{', quick mode' if args.quick else ''})")

    heading("1. A character-level language model")
    lm = char_lm(cfg, out, args.seed)
    heading("2. A long-term dependency: plain RNN vs GRU")
    rec, trained = recall(cfg, out, args.seed)
    heading("3. The rest of chapter 10: trees, echo states, memory, sequence to sequence")
    rest = structured(args.seed, out, cfg.structured_steps, cfg.esn_units, cfg.esn_steps,
                      say=say)
    summary = {"config": asdict(cfg), "char_lm": lm, "recall": rec, "structured": rest}

    heading("4. Outputs")
    files = plots(summary, out)
    try:
        files += drawings(cfg, out, trained, args.seed)
    except Exception as exc:               # a drawing must never sink the demo
        say(f"(drawings skipped: {type(exc).__name__}: {exc})")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    with open(out / "summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    files += ["summary.json", "samples.txt", "char_lm.npz", "seq2seq.npz", "char_lm_history.csv",
              "recall_rnn_history.csv", "recall_gru_history.csv", "gradient_profile.csv"]
    for name in sorted(files):
        say(f"  {name}")
    r = rec["results"]
    say(f"\nfinal: char LM held-out loss {lm['valid_loss_after']:.3f} nats/char "
        f"(from {lm['valid_loss_before']:.3f}); recall over τ = {cfg.recall_steps_tau}: "
        f"RNN loss {r['rnn']['test_loss']:.3f} / accuracy {r['rnn']['accuracy']:.0%}, "
        f"GRU loss {r['gru']['test_loss']:.3f} / accuracy {r['gru']['accuracy']:.0%}; "
        f"Boolean expressions of 6 operators {rest['recursive']['accuracy_by_operators'][6]:.0%}"
        f", Mackey–Glass NRMSE {rest['echo_state']['nrmse']:.1e}, copy task "
        f"{rest['memory']['loss']:.3f} nats/symbol, reversal "
        f"{rest['encoder_decoder']['exact']:.0%} exact")
    say(f"wall time {summary['seconds']:.1f} s")
    say(f"outputs written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
