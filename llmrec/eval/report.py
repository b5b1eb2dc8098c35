"""Write an evaluation document as JSON, a Markdown report and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmrec.eval.metrics import KS

__all__ = ["markdown", "write_report"]


def _f(x: float) -> str:
    return f"{x:.4f}"


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())


def _ci_cell(ci: dict[str, float]) -> str:
    return f"{ci['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]"


def _data_lines(doc: dict[str, Any]) -> list[str]:
    c = doc["counts"]
    return [
        f"{doc['users']} users ({doc['evaluated_users']} evaluated: >= 3 distinct items), "
        f"{doc['items']} items, {c['events']} events; encoder {doc['encoder']}; "
        f"{doc['seconds']:.0f} s.",
        "",
        f"Input: {c['invalid_records']} invalid records skipped, {c['events_unknown_item']} "
        f"events on items missing from the catalogue dropped, {c['repeated_pair_events']} "
        f"repeated (user, item) events collapsed into {c['pairs']} pairs; "
        f"{c['train_events']} events in the train stream.",
    ]


def _protocol_a(a: dict[str, Any]) -> list[str]:
    lines = [
        "## Protocol A (leave-last-out)",
        "",
        "Per user, distinct items by first-event time (ties in file order): last = test, "
        "second-last = validation, rest = train. Every model learns from every user's train "
        "pairs; no event on a held-out item reaches training. Each model's parameters are "
        "chosen on validation NDCG@10 from its grid. At test the validation interaction is in "
        "every model's history. Ranks are exact expectations under random tie-breaking. "
        "MRR is truncated at 50.",
        "",
        "| model | HR@10 | NDCG@10 | MRR | val NDCG@10 | cold HR@10 | coverage@10 | chosen "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in a["models"].items():
        t = m["test"]
        lines.append(
            f"| {name} | {_f(t['HR@10'])} | {_f(t['NDCG@10'])} | {_f(t['MRR'])} "
            f"| {_f(m['validation']['NDCG@10'])} | {_f(m['cold_start']['HR@10'])} "
            f"| {m['coverage@10']:.3f} | {_params(m['params'])} | {m['seconds']:.1f} |"
        )
    cold_users = int(next(iter(a["models"].values()))["cold_start"]["users"])
    lines += [
        "",
        f"Cold-start slice: {a['cold_start_definition']} ({cold_users} users).",
        "",
        "### Hybrid minus each baseline (test, paired bootstrap 95 % CI over users)",
        "",
        f"Best baseline by test NDCG@10: **{a['best_baseline']}**.",
        "",
        "| baseline | Δ HR@10 [95 % CI] | Δ NDCG@10 [95 % CI] |",
        "|---|---|---|",
    ]
    for name, ci in a["hybrid_minus_baseline"].items():
        lines.append(f"| {name} | {_ci_cell(ci['HR@10'])} | {_ci_cell(ci['NDCG@10'])} |")
    if a["ablations"]:
        lines += [
            "",
            "### Ablations (variant minus the hybrid; each variant tuned on validation)",
            "",
            "| variant | HR@10 | NDCG@10 | Δ HR@10 [95 % CI] | Δ NDCG@10 [95 % CI] |",
            "|---|---|---|---|---|",
        ]
        for name, ci in a["ablations"].items():
            t = a["models"][name]["test"]
            lines.append(
                f"| {name} | {_f(t['HR@10'])} | {_f(t['NDCG@10'])} | {_ci_cell(ci['HR@10'])} "
                f"| {_ci_cell(ci['NDCG@10'])} |"
            )
    lines += _ranker_lines(a.get("ranker", {}))
    lines += ["", "HR@k on test:", "", "| model | " + " | ".join(f"HR@{k}" for k in KS) + " |"]
    lines.append("|---|" + "---|" * len(KS))
    for name, m in a["models"].items():
        lines.append(f"| {name} | " + " | ".join(_f(m["test"][f"HR@{k}"]) for k in KS) + " |")
    return lines


def _ranker_lines(r: dict[str, Any]) -> list[str]:
    """What the learned ranker trained on and which features carried it."""
    if not r:
        return []
    if "skipped" in r:
        return ["", f"Learned ranker: not trained ({r['skipped']}); the hybrid is the fusion."]
    gains = ", ".join(f"{k} {v:.0%}" for k, v in r["gain_share"].items() if v >= 0.01)
    return [
        "",
        f"Learned ranker (LightGBM LambdaMART): {r['train_groups']} train queries sampled from "
        f"the train replay (target retrieved in {r['train_target_retrieved']:.1%}), "
        f"{r['validation_groups']} validation queries, {r['rounds']} rounds, "
        f"{_params(r['params'])}. Split gain: {gains}.",
    ]


def markdown(doc: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    lines = [f"# llmrec eval: {doc['dataset']}", "", *_data_lines(doc), ""]
    lines += _protocol_a(doc["protocol_a"])
    lines += [
        "",
        f"User state: mean {doc['bytes_per_user']['mean']:.0f} bytes, "
        f"max {doc['bytes_per_user']['max']} bytes.",
    ]
    if "protocol_b" in doc:
        b = doc["protocol_b"]
        lines += [
            "",
            "## Protocol B (prequential stream, no look-ahead)",
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
