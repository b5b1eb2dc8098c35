"""Write an evaluation document as JSON, a Markdown report and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmrec.eval.metrics import KS

__all__ = ["markdown", "write_report"]


def _f(x: float) -> str:
    return f"{x:.4f}"


def markdown(doc: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    a = doc["protocol_a"]
    ref = a.get("reference", {})
    lines = [
        f"# llmrec eval: {doc['dataset']}",
        "",
        f"{doc['users']} users, {doc['items']} items, {doc['interactions']} interactions; "
        f"encoder {doc['encoder']}; {doc['seconds']:.0f} s.",
        "",
        "## Protocol A (leave-last-out, rank over all items minus the user's train items)",
        "",
        "Per user by timestamp (ties in file order): last = test, second-last = validation, "
        "rest = train. Models fit on train only; at test the validation item is excluded from "
        "the ranking but not folded in. Ties count for the target. MRR is truncated at 50.",
        "",
        "| model | HR@10 | NDCG@10 | MRR | reference HR@10 / NDCG@10 | val NDCG@10 "
        "| cold HR@10 | coverage@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in a["models"].items():
        t, r = m["test"], ref.get(name)
        refs = f"{r['HR@10']:.3f} / {r['NDCG@10']:.3f}" if r else "-"
        lines.append(
            f"| {name} | {_f(t['HR@10'])} | {_f(t['NDCG@10'])} | {_f(t['MRR'])} | {refs} "
            f"| {_f(m['validation']['NDCG@10'])} | {_f(m['cold_start']['HR@10'])} "
            f"| {m['coverage@10']:.3f} |"
        )
    cold_users = int(next(iter(a["models"].values()))["cold_start"]["users"])
    lines += [
        "",
        f"Cold-start slice: {a['cold_start_definition']} ({cold_users} users).",
        "",
        "HR@k on test:",
        "",
        "| model | " + " | ".join(f"HR@{k}" for k in KS) + " |",
        "|---|" + "---|" * len(KS),
    ]
    for name, m in a["models"].items():
        lines.append(f"| {name} | " + " | ".join(_f(m["test"][f"HR@{k}"]) for k in KS) + " |")
    best = a["models"].get("Hybrid", {}).get("params", {})
    lines += ["", f"Hybrid parameters chosen on validation: `{json.dumps(best)}`", ""]
    lines.append(
        f"User state: mean {doc['bytes_per_user']['mean']:.0f} bytes, "
        f"max {doc['bytes_per_user']['max']} bytes."
    )
    if "protocol_b" in doc:
        b = doc["protocol_b"]
        lines += [
            "",
            "## Protocol B (prequential stream)",
            "",
            f"{b['checked']} sampled events of {b['events']}: HR@{b['k']} of the list published "
            f"just before the event: hybrid {_f(b['hybrid_hr'])}, popular-now "
            f"{_f(b['popular_hr'])}.",
        ]
    return "\n".join(lines) + "\n"


def _plots(doc: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = doc["protocol_a"]["models"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in models.items():
        ax.plot(KS, [m["test"][f"HR@{k}"] for k in KS], marker="o", label=name)
    ax.set(xlabel="k", ylabel="HR@k", title=f"{doc['dataset']}: HR@k (Protocol A test)")
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "hr_at_k.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(models)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [models[n]["test"]["HR@10"] for n in names], 0.4, label="all")
    cold = [models[n]["cold_start"]["HR@10"] for n in names]
    ax.bar([x + 0.2 for x in xs], cold, 0.4, label="cold-start items")
    ax.set_xticks(list(xs), names)
    ax.set(ylabel="HR@10", title=f"{doc['dataset']}: HR@10 per slice")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "slices.png", dpi=100)
    plt.close(fig)
    return ["hr_at_k.png", "slices.png"]


def write_report(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write report.json, report.md and the plots under `out_dir`; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out_dir / "report.md").write_text(markdown(doc))
    names = ["report.json", "report.md", *_plots(doc, out_dir)]
    return [out_dir / n for n in names]
