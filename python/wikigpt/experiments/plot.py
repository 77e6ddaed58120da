"""`wikigpt plot`: training curves of one or more runs on one tokens-seen axis.

tokens_seen is cumulative across resumed and grown runs (a run started with --init-from carries its parent's
count), so the stages of a growth experiment line up end to end and can be compared with a run trained from scratch.
Three panels: loss (val solid, the train estimate of each evaluation dashed, and the loss of every logged step as
a thin faint line, which shows what happens between evaluations thousands of steps apart), val perplexity (log
scale), MFU of the logged steps (runs without a peak are left out of that panel and say so).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..util.metrics import read_records


def read_evals(run_dir: str | os.PathLike) -> list[dict]:
    """The eval records of a run's metrics.jsonl, in step order."""
    return read_records(run_dir, "eval")


def plot_runs(
    runs: Sequence[str | os.PathLike],
    output: str | os.PathLike = "curves.png",
    labels: Sequence[str] | None = None,
) -> Path:
    """Draw the runs' curves into one PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    if labels and len(labels) != len(runs):
        raise ConfigError(f"{len(labels)} labels for {len(runs)} runs")
    data = []
    for i, run in enumerate(runs):
        ev = read_evals(run)
        if not ev:
            raise ConfigError(f"{run}: metrics.jsonl has no evaluation yet")
        data.append((labels[i] if labels else Path(run).resolve().name, ev, read_records(run, "step")))

    fig, (ax_loss, ax_ppl, ax_mfu) = plt.subplots(3, 1, figsize=(9, 11), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    no_mfu = []
    for i, (label, ev, steps) in enumerate(data):
        c = colors[i % len(colors)]
        x = [r["tokens_seen"] for r in ev]
        logged = [(r["tokens_seen"], r["loss"]) for r in steps if r.get("loss") is not None]
        if logged:
            ax_loss.plot(*zip(*logged), color=c, linewidth=0.7, alpha=0.35)
        ax_loss.plot(x, [r["val_loss"] for r in ev], color=c, marker=".", label=label)  # one legend entry a run
        ax_loss.plot(x, [r["train_loss"] for r in ev], color=c, linestyle="--", marker="x", alpha=0.7)
        ax_ppl.plot(x, [r["val_ppl"] for r in ev], color=c, marker=".", label=label)
        # MFU of every logged window where there are step records (denser than the evaluations')
        mfu = [(r["tokens_seen"], 100 * r["mfu"]) for r in (steps or ev) if r.get("mfu") is not None]
        if mfu:
            ax_mfu.plot(*zip(*mfu), color=c, marker="." if len(mfu) < 50 else None, label=label)
        else:
            no_mfu.append(label)
    ax_loss.set_ylabel("loss (nats/token)")
    ax_loss.set_title("loss: val (solid), train at evaluations (dashed), train of logged steps (thin)")
    ax_loss.legend(fontsize="small")
    ax_ppl.set_ylabel("val perplexity")
    ax_ppl.set_yscale("log")
    ax_ppl.legend(fontsize="small")
    ax_mfu.set_ylabel("MFU (%)")
    ax_mfu.set_title("MFU" + (f" (n/a for: {', '.join(no_mfu)})" if no_mfu else ""))
    if len(no_mfu) < len(data):
        ax_mfu.legend(fontsize="small")
    else:  # say why the panel is empty instead of leaving a bare 0-1 axis
        ax_mfu.text(0.5, 0.5,
                    "no MFU: no peak TFLOPS known for the device\n(a CPU run, or pass --peak-tflops to train)",
                    transform=ax_mfu.transAxes, ha="center", va="center", color="0.4")
        ax_mfu.set_yticks([])
    ax_mfu.set_xlabel("tokens seen (across resumed and grown runs)")
    ax_mfu.xaxis.set_major_formatter(EngFormatter())  # 2M, 1.5G rather than 2e6
    for ax in (ax_loss, ax_ppl, ax_mfu):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
