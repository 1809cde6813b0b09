"""``make demo`` in miniature: the demo's whole pipeline at tiny sizes (``--quick``)."""
from __future__ import annotations

import json

from unfold import demo


def test_quick_demo_writes_every_output(tmp_path, capsys):
    assert demo.main(["--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "gradient check of the first batch" in printed
    assert f"outputs written to {tmp_path}" in printed
    for name in ("summary.json", "samples.txt", "char_lm.npz", "char_lm_history.csv",
                 "recall_rnn_history.csv", "recall_gru_history.csv", "gradient_profile.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["char_lm"]["gradient_check"]["max_rel_error"] < 1e-4
    assert summary["char_lm"]["valid_loss_after"] < summary["char_lm"]["valid_loss_before"]
    assert set(summary["recall"]["results"]) == {"rnn", "gru"}
    profile = (tmp_path / "gradient_profile.csv").read_text().splitlines()
    assert profile[0] == "t,rnn_init,rnn_trained,gru_init,gru_trained"
    assert len(profile) == 1 + demo.QUICK.recall_steps_tau
    assert set(summary["structured"]) == {"recursive", "echo_state", "memory", "encoder_decoder"}
    assert (tmp_path / "seq2seq.npz").stat().st_size > 0
    assert summary["structured"]["echo_state"]["nrmse"] < 0.5
