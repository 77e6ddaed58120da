"""`wikigpt report`: report.md and PNG plots of a growth experiment folder (written by `wikigpt grow`).

Every loss, token count, throughput and time in the report is read from the runs' metrics.jsonl (eval records for
losses, step records for tokens/s and MFU), the dataset's manifest.json and grow's state.json; nothing is
re-evaluated. The same numbers go to report.json, so they can be checked or compared by a script.

    report.md      the plan, the parts, a table per stage (time, tokens/s, MFU, disk), val loss per part at the end
                   of each stage, staged vs all-at-once, a conclusion templated from those numbers, the samples
    loss.png       train and val loss against tokens seen, one colour per stage (and the all-at-once run)
    per_part.png   val loss on each part's own val pages against tokens seen, staged vs all-at-once
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import ConfigError
from ..util.metrics import read_lines

RUN_LABEL_COMPARE = "all-at-once"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable: {e}") from None


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(eval records, step records) of a run's metrics.jsonl, each in step order."""
    records = read_lines(run_dir / "metrics.jsonl")
    by_step = sorted(records, key=lambda r: r.get("step", 0))
    return [r for r in by_step if r.get("kind") == "eval"], [r for r in by_step if r.get("kind") == "step"]


def part_label(name: str) -> str:
    """`enwiki-20251101-pages-articles11` -> `part 11`; other names stay as they are."""
    m = re.search(r"-pages-articles(?:-multistream)?(\d+)$", name)
    return f"part {m.group(1)}" if m else name


def _median(xs: list[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _run_summary(run_dir: Path, prev_elapsed: float) -> dict[str, Any]:
    evals, steps = read_metrics(run_dir)
    cfg = _read_json(run_dir / "config.json") or {}
    samples = _read_json(run_dir / "grow_samples.json")
    out: dict[str, Any] = {"run_dir": str(run_dir), "evals": len(evals)}
    if not evals:
        return out
    first, last = evals[0], evals[-1]
    train_cfg = cfg.get("train", {})
    derived = cfg.get("derived", {})
    meta = _read_json(run_dir / "meta.json") or {}
    sessions = meta.get("history", []) + [meta]  # meta.json keeps the earlier (killed) sessions in history
    out.update({
        "step_start": sessions[0].get("start_iter"),
        "sessions": len(sessions),
        "step_end": last["step"],
        "tokens_seen_end": last["tokens_seen"],
        "final": {k: v for k, v in last.items() if k in ("val_loss", "val_ppl", "train_loss") or k.startswith("val/")},
        "first_eval": {k: v for k, v in first.items()
                       if k in ("step", "tokens_seen", "val_loss", "train_loss") or k.startswith("val/")},
        # training wall time of this run alone: elapsed_s is cumulative over the runs it continues
        "train_s": last["elapsed_s"] - prev_elapsed,
        "elapsed_end": last["elapsed_s"],
        # the median of the step records: robust to the compile warm-up of each (re)start
        "tokens_per_s": _median([r.get("tokens_per_s") for r in steps]),
        "mfu": _median([r.get("mfu") for r in steps]),
        "lr": train_cfg.get("lr"), "min_lr": train_cfg.get("min_lr"), "schedule": train_cfg.get("schedule"),
        "warmup_iters": train_cfg.get("warmup_iters"),
        "tokens_per_step": derived.get("tokens_per_step"), "micro_batch": derived.get("micro_batch"),
        "device": derived.get("device"), "peak_tflops": derived.get("peak_tflops"),
        "parameters": derived.get("parameters"),
        "samples": samples.get("samples", []) if samples else [],
        "samples_error": samples.get("error") if samples else None,
    })
    return out


def summarize(out: Union[str, os.PathLike]) -> dict[str, Any]:
    """Everything the report shows, as plain data (also written to report.json)."""
    out = Path(out)
    state = _read_json(out / "state.json")
    if state is None:
        raise ConfigError(f"{out}: no state.json: not a `wikigpt grow` folder")
    manifest = _read_json(out / "data" / "manifest.json") or {"parts": []}
    plan_text = (out / "plan.toml").read_text(encoding="utf-8") if (out / "plan.toml").is_file() else ""

    added_by = {p: name for name, rec in state["stages"].items() for p in rec.get("parts", [])}
    parts = [{
        "name": p["name"], "label": part_label(p["name"]), "page_ids": p.get("page_ids"),
        "articles": p["pages"]["kept"], "train_tokens": p["tokens"]["train"], "val_tokens": p["tokens"]["val"],
        "val_pages": p.get("documents", {}).get("val"), "added_by": added_by.get(p["name"]),
        "add_s": p.get("seconds"), "compressed_bytes": p.get("bytes", {}).get("compressed"),
    } for p in manifest["parts"]]
    labels = {p["name"]: p["label"] for p in parts}
    if len(set(labels.values())) < len(labels):  # two parts would share a label: use names
        labels = {n: n for n in labels}
        for p in parts:
            p["label"] = p["name"]

    stages = []
    prev_elapsed = 0.0
    for name in state.get("order", []):
        rec = state["stages"].get(name, {})
        run = out / "stages" / name
        s = {"name": name, "status": rec.get("status", "pending"), "parts": rec.get("parts", []),
             "tokens_planned": next((x["tokens"] for x in state.get("plan", {}).get("stages", [])
                                     if x["name"] == name), None),
             "tokens_target": rec.get("tokens_target"), "mix": rec.get("mix"),
             "mix_plan": next((x["mix"] for x in state.get("plan", {}).get("stages", []) if x["name"] == name), None),
             "download_s": rec.get("download_s", 0.0), "add_s": rec.get("add_s"), "samples_s": rec.get("samples_s"),
             "disk": rec.get("disk", {})}
        if run.is_dir():
            s.update(_run_summary(run, prev_elapsed))
            prev_elapsed = s.get("elapsed_end", prev_elapsed)
        stages.append(s)

    compare = None
    crec = state.get("compare") or {}
    cdir = out / "compare" / RUN_LABEL_COMPARE
    if cdir.is_dir():
        compare = {"name": RUN_LABEL_COMPARE, "status": crec.get("status", "running"), "mix": crec.get("mix"),
                   "tokens_target": crec.get("tokens_target"), "samples_s": crec.get("samples_s"),
                   "disk": crec.get("disk", {})}
        compare.update(_run_summary(cdir, 0.0))

    summary = {"out": str(out), "plan": plan_text, "parts": parts, "stages": stages, "compare": compare}
    summary["conclusion"] = conclusion(summary)
    return summary


def _fmt_loss(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.4f}"


def conclusion(s: dict) -> list[str]:
    """Plain sentences templated from the numbers in the summary, stating nothing they do not show."""
    lines = []
    done = [st for st in s["stages"] if st.get("status") == "finished" and st.get("final")]
    if not done:
        return ["No stage has finished yet."]
    labels = {p["name"]: p["label"] for p in s["parts"]}
    last = done[-1]
    cmp = s.get("compare")
    if cmp and cmp.get("status") == "finished" and cmp.get("final"):
        a, b = last["final"]["val_loss"], cmp["final"]["val_loss"]
        lower = "all-at-once" if b < a else "staged" if a < b else None
        diff = f" ({lower} lower by {abs(a - b):.4f})" if lower else " (equal)"
        lines.append(f"Final overall val loss: staged {a:.4f} vs all-at-once {b:.4f}{diff}, after "
                     f"{last['tokens_seen_end']:,} and {cmp['tokens_seen_end']:,} tokens seen.")
        per = []
        for name, label in labels.items():
            ka = last["final"].get(f"val/{name}")
            kb = cmp["final"].get(f"val/{name}")
            if ka is not None and kb is not None:
                per.append(f"{label} {ka:.4f} vs {kb:.4f} ({ka - kb:+.4f})")
        if per:
            lines.append("Per part, staged vs all-at-once (staged minus all-at-once): " + "; ".join(per) + ".")
    if len(done) > 1:
        first = done[0]
        for name in first.get("parts", []):
            key = f"val/{name}"
            a, b = first["final"].get(key), last["final"].get(key)
            if a is None or b is None:
                continue
            verb = "rose" if b > a else "fell" if b < a else "stayed"
            label = labels.get(name, name)
            mixes = ", ".join(f"{d['name']} {_mix_text(d['mix_plan'])}" for d in done[1:])
            lines.append(f"{label[:1].upper() + label[1:]}'s val loss {verb} from {a:.4f} at the end of stage "
                         f"{first['name']} to {b:.4f} at the end of stage {last['name']} ({b - a:+.4f}); the later "
                         f"stages' mixes: {mixes}.")
    seeds = "one run each" if cmp else "one run"
    lines.append(f"These are {seeds} with one seed; the run-to-run spread was not measured, so differences of a "
                 "similar size to it cannot be told apart from noise.")
    return lines


def _mix_text(mix: Any) -> str:
    if isinstance(mix, dict):
        return "{" + ", ".join(f"{k} = {v:g}" for k, v in mix.items()) + "}"
    return f'"{mix}"'


# ---------------------------------------------------------------------------------------------------------------
# plots


def _stage_runs(out: Path, s: dict) -> list[tuple[str, list[dict], list[dict]]]:
    return [(st["name"], *read_metrics(out / "stages" / st["name"])) for st in s["stages"]
            if (out / "stages" / st["name"]).is_dir()]


def plot_report(out: Union[str, os.PathLike], s: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    runs = _stage_runs(out, s)
    cmp = read_metrics(out / "compare" / RUN_LABEL_COMPARE) if s.get("compare") else None
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    boundaries = [(st["name"], st["tokens_seen_end"]) for st in s["stages"] if st.get("tokens_seen_end")]
    written = []

    def mark_stages(ax) -> None:
        for name, x in boundaries:
            ax.axvline(x, color="0.6", linestyle=":", linewidth=1)
            ax.annotate(f"end {name}", (x, 1.0), xycoords=("data", "axes fraction"), fontsize=7, color="0.4",
                        rotation=90, ha="right", va="top")

    # loss.png: one colour per stage, train loss thin (step records), val loss with markers (eval records)
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (name, evals, steps) in enumerate(runs):
        c = colors[i % len(colors)]
        if steps:
            ax.plot([r["tokens_seen"] for r in steps], [r["loss"] for r in steps], color=c, alpha=0.35, linewidth=1)
        if evals:
            ax.plot([r["tokens_seen"] for r in evals], [r["val_loss"] for r in evals], color=c, marker="o",
                    markersize=3, label=f"stage {name}: val")
    if cmp and cmp[0]:
        ev, st = cmp
        if st:
            ax.plot([r["tokens_seen"] for r in st], [r["loss"] for r in st], color="k", alpha=0.25, linewidth=1)
        ax.plot([r["tokens_seen"] for r in ev], [r["val_loss"] for r in ev], color="k", linestyle="--", marker="s",
                markersize=3, label="all-at-once: val")
    mark_stages(ax)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("train loss (thin) and val loss (markers); a stage's val = the parts in the dataset then",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    # per_part.png: one panel per part, the staged model's val loss on that part over all stages vs all-at-once
    parts = s["parts"]
    if parts:
        fig, axes = plt.subplots(len(parts), 1, figsize=(9, 2.8 * len(parts) + 0.6), sharex=True, squeeze=False)
        for ax, p in zip(axes[:, 0], parts):
            key = f"val/{p['name']}"
            for i, (name, evals, _) in enumerate(runs):
                pts = [(r["tokens_seen"], r[key]) for r in evals if key in r]
                if pts:
                    ax.plot(*zip(*pts), color=colors[i % len(colors)], marker="o", markersize=3,
                            label=f"stage {name}")
            if cmp and cmp[0]:
                pts = [(r["tokens_seen"], r[key]) for r in cmp[0] if key in r]
                if pts:
                    ax.plot(*zip(*pts), color="k", linestyle="--", marker="s", markersize=3, label="all-at-once")
            mark_stages(ax)
            ax.set_ylabel("val loss")
            ax.set_title(f"{p['label']} ({p['name']}, added by stage {p['added_by']}): val loss on its own "
                         f"{p['val_pages']} val pages", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="x-small", loc="best")
        axes[-1, 0].set_xlabel("tokens seen")
        fig.tight_layout()
        path = out / "per_part.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------------------
# markdown


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def _mb(n: Optional[int]) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f} MB"


def _secs(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:,.1f}"


def render_markdown(s: dict, images: list[str]) -> str:
    """The report as GitHub markdown; `images` are paths relative to the markdown file."""
    L: list[str] = []
    labels = {p["name"]: p["label"] for p in s["parts"]}
    L.append("# Growth experiment report")
    L.append("")
    L.append(f"Folder `{s['out']}`. Numbers are read from each run's `metrics.jsonl`, the dataset's `manifest.json` "
             "and `state.json` (all also in `report.json`); regenerate with `wikigpt report`.")
    L.append("")
    L.append("## Conclusion")
    L.append("")
    L += [f"- {line}" for line in s["conclusion"]]
    L.append("")

    L.append("## Parts")
    L.append("")
    L += _table(["part", "name", "page ids", "articles", "train tokens", "val tokens", "val pages", "added by",
                 "tokenize (s)"],
                [[p["label"], f"`{p['name']}`",
                  "–" if not p["page_ids"] else f"{p['page_ids'][0]}–{p['page_ids'][1]}",
                  f"{p['articles']:,}", f"{p['train_tokens']:,}", f"{p['val_tokens']:,}",
                  "–" if p["val_pages"] is None else p["val_pages"], p["added_by"] or "–", _secs(p["add_s"])]
                 for p in s["parts"]])
    L.append("")

    runs = [st for st in s["stages"] if st.get("evals")]
    if s.get("compare") and s["compare"].get("evals"):
        runs.append(s["compare"])
    L.append("## Stages")
    L.append("")
    L.append("Train time is the run's wall time from its `metrics.jsonl` (`elapsed_s`, evaluations included); tokens/s "
             "and MFU are the medians of its step records; disk is measured when the stage finished.")
    L.append("")
    rows = []
    for st in runs:
        is_cmp = st["name"] == RUN_LABEL_COMPARE
        rows.append([
            st["name"], st.get("status", ""),
            "all" if is_cmp else (", ".join(labels.get(p, p) for p in st.get("parts", [])) or "none"),
            f"{st['tokens_seen_end']:,}", f"{st.get('step_end', 0):,}",
            f"{st['lr']:g} {st['schedule']}" if st.get("lr") is not None else "–",
            _mix_text(st.get("mix_plan") if not is_cmp else "tokens" if st.get("mix") == "tokens" else st.get("mix")),
            "–" if is_cmp else _secs((st.get("download_s") or 0.0) + (st.get("add_s") or 0.0)),
            _secs(st.get("train_s")), _secs(st.get("samples_s")),
            "–" if st.get("tokens_per_s") is None else f"{st['tokens_per_s']:,.0f}",
            "n/a" if st.get("mfu") is None else f"{100 * st['mfu']:.1f}%",
            _mb(st.get("disk", {}).get("dataset")) if not is_cmp else "–",
            _mb(st.get("disk", {}).get("run")),
        ])
    L += _table(["run", "status", "parts added", "tokens seen (end)", "step (end)", "lr", "mix",
                 "download+tokenize (s)", "train (s)", "samples (s)", "tokens/s", "MFU", "dataset disk",
                 "run folder disk"], rows)
    L.append("")
    dev = next((st.get("device") for st in runs if st.get("device")), None)
    par = next((st.get("parameters") for st in runs if st.get("parameters")), None)
    if dev or par:
        peak = next((st.get("peak_tflops") for st in runs if st.get("peak_tflops")), None)
        L.append(f"Model: {par / 1e6:.2f}M parameters" if par else "Model: –")
        L[-1] += f"; device {dev}" if dev else ""
        L[-1] += f"; MFU against {peak:g} TFLOPS" if peak else "; MFU n/a (no peak known for this device)"
        L[-1] += "."
        L.append("")

    L.append("## Val loss at the end of each stage")
    L.append("")
    L.append("Loss in nats/token on each part's own val pages (perplexity = e^loss in brackets). \"overall\" is over "
             "the parts in the dataset at that time, weighted by their val tokens; \"–\" = not in the dataset yet.")
    L.append("")
    header = ["after", "tokens seen", "overall"] + [p["label"] for p in s["parts"]]
    rows = []
    for st in runs:
        f = st["final"]
        row = [st["name"], f"{st['tokens_seen_end']:,}", f"{f['val_loss']:.4f} ({f['val_ppl']:.1f})"]
        for p in s["parts"]:
            v = f.get(f"val/{p['name']}")
            row.append("–" if v is None else f"{v:.4f} ({math.exp(min(v, 50)):.1f})")
        rows.append(row)
    L += _table(header, rows)
    L.append("")

    if images:
        L.append("## Curves")
        L.append("")
        for img in images:
            L.append(f"![{Path(img).stem}]({img})")
            L.append("")

    L.append("## Samples")
    L.append("")
    for st in runs:
        if not st.get("samples") and not st.get("samples_error"):
            continue
        L.append(f"### {st['name']} (after {st['tokens_seen_end']:,} tokens)")
        L.append("")
        if st.get("samples_error"):
            L.append(f"Samples off: {st['samples_error']}")
            L.append("")
        for smp in st.get("samples", []):
            L.append(f"Prompt: `{smp['prompt']}`")
            L.append("")
            L.append("```text")
            L.append(smp["text"].replace("```", "'''"))
            L.append("```")
            L.append("")

    L.append("## Plan")
    L.append("")
    L.append("```toml")
    L.append(s["plan"].rstrip("\n"))
    L.append("```")
    L.append("")
    return "\n".join(L)


def write_report(out: Union[str, os.PathLike], output: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Write report.md (or `output`), report.json and the PNGs into the experiment folder; returns report.md."""
    from ..util.io import atomic_write_bytes, atomic_write_json

    out = Path(out)
    s = summarize(out)
    images = plot_report(out, s) if any(st.get("evals") for st in s["stages"]) else []
    atomic_write_json(out / "report.json", s)
    path = Path(output) if output else out / "report.md"
    rel = [Path(os.path.relpath(img.resolve(), path.resolve().parent)).as_posix() for img in images]
    atomic_write_bytes(path, render_markdown(s, rel).encode("utf-8"))
    return path


def _cmd_report(args: argparse.Namespace) -> int:
    print(write_report(args.folder, args.output))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("report", help="report.md + PNGs of a growth experiment (`wikigpt grow` folder)")
    p.add_argument("folder", help="the experiment folder given to `wikigpt grow --out`")
    p.add_argument("--output", "-o", default=None, help="markdown file to write (default FOLDER/report.md)")
    p.set_defaults(func=_cmd_report)
