"""Success against goal distance: flat CEM vs the hierarchical planner (subgoals from a latent
graph), on the shipped model of one env.

Pair sets: goals ``--offsets`` env steps ahead along held-out episodes of the data policy
(regenerated, seed 0; 25 is the standard protocol), and goals drawn anywhere by the env
(``random_goal_pairs``: Two-Room any room, Reacher any joint configuration). The env-step
budget is ``max(50, 2 x offset)``, and ``--random-budget`` (200) for random goals. Both planners
are CEM at the env's reference budget (the hierarchical one adds a shortest-path search over the
graph per plan, reported in the plan latency). The graph holds the block-boundary latents of
``--graph-episodes`` regenerated training episodes of the data policy (never the episodes the
pairs come from).

    MUJOCO_GL=egl .venv/bin/python benchmarks/far_goals.py --env tworoom     # ~40 min, 2 cores
    MUJOCO_GL=egl .venv/bin/python benchmarks/far_goals.py --env tworoom --pairs 5 --offsets 25

Every finished (row, pair) is appended to ``<work>/far_goals_<env>.jsonl`` with the planner's
RNG state after it, so a killed run resumes where it stopped with the same results as an
uninterrupted one.

Writes ``benchmarks/results/far_goals_<env>.{json,md}`` after every row, keeping the rows of an
earlier run under the same protocol (seed, model, graph) that this one does not redo, so goal
distances can be run one at a time (each row says its number of pairs; the pairs of a row are a
prefix-stable sequence, so a run with more ``--pairs`` extends the logged ones); and
``far_goals_<env>.pairs.jsonl``, the per-pair results, from which a run with an empty work
folder resumes.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.control import Episode
from lewm_mpc.evaluation import (
    EvalConfig,
    PairResult,
    evaluate_pairs,
    heldout_pairs,
    random_goal_pairs,
)
from lewm_mpc.models.pretrained import read_card
from lewm_mpc.pairs import Pair

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import reference_cem, write_results


@dataclass(frozen=True)
class Args:
    env: str = "tworoom"
    pairs: int = 50
    offsets: str = "25,50,100"
    random: bool = True
    random_budget: int = 200
    graph_episodes: int = 300
    seed: int = 0
    out: Path = Path("benchmarks/results")
    work: Path = Path("runs/far_goals")


def main(args: Args) -> dict:
    run = lm.load_run(f"pretrained:{args.env}", regenerated_episodes=args.graph_episodes)
    spec = run.env_spec
    assert spec is not None
    graph = lm.LatentGraph.from_dataset(run.model, run.dataset, run.train_ids)
    card = read_card(f"pretrained:{args.env}")
    policy = None if card is None else card.data_policy
    env_config = run.model.run_meta.env_config
    sets = []
    for offset in (int(o) for o in args.offsets.split(",") if o):
        pairs, skipped = heldout_pairs(spec, args.pairs, args.seed, policy, env_config, offset)
        sets.append((f"{offset} steps ahead", pairs, skipped, max(50, 2 * offset)))
    if args.random:
        pairs, skipped = random_goal_pairs(spec, args.pairs, args.seed, env_config)
        sets.append(("random goal", pairs, skipped, args.random_budget))
    kinds = {name: ("random" if name == "random goal" else "offset") for name, *_ in sets}
    name = f"far_goals_{args.env}"
    common = {"model": card.dataset_sha256 if card else None, "graph_episodes": args.graph_episodes}
    log = PairLog(args.work / f"{name}.jsonl", common)
    log.seed_from(args.out / f"{name}.pairs.jsonl")
    graph_facts = {"nodes": graph.num_nodes, "edges": int(graph.costs.nnz // 2),
                   "episodes": len(run.train_ids), "stride": graph.stride}  # fmt: skip
    protocol = {"seed": args.seed, **common}  # each row records its own number of pairs
    rows = earlier_rows(args.out / f"{name}.json", protocol)
    result: dict = {}
    for goals, pairs, skipped, steps in sets:
        for kind in ("flat", "hierarchical"):
            low = reference_cem(run, args.seed)
            planner = low if kind == "flat" else lm.HierarchicalPlanner(low, graph)
            config = EvalConfig(num_pairs=len(pairs), budget=steps, seed=args.seed,
                                goals=kinds[goals])  # fmt: skip
            # Pairs are a prefix-stable sequence: a longer run of a row extends a shorter one.
            row_key = {"goals": goals, "planner": kind,
                       "config": {**asdict(config), "num_pairs": None}}  # fmt: skip
            done = log.resume(row_key, pairs, low.generator)
            report = evaluate_pairs(planner, pairs, spec, config, run.obs_mode, env_config,
                                    skipped, progress=True, done=done,
                                    on_episode=log.recorder(row_key, low.generator))  # fmt: skip
            row = {"goals": goals, "planner": kind, "budget": steps, "pairs": report.num_pairs,
                   "success_rate": report.success_rate, "ci95": list(report.ci95),
                   "steps_to_success_mean": report.steps_to_success_mean,
                   "plan_p50_s": report.latency_p50_s}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows = merge_rows(rows, row)
            result = write_results(args.out, name, args, rows, markdown, env=args.env,
                                   protocol=protocol, graph=graph_facts)  # fmt: skip
            log.write_compact(args.out / f"{name}.pairs.jsonl")
    return result


def _row_order(row: dict[str, Any]) -> tuple:
    goals = row["goals"]
    distance = float("inf") if goals == "random goal" else int(goals.split()[0])
    return distance, row["planner"] != "flat"


def merge_rows(rows: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """``rows`` with ``row`` added (replacing the same goals and planner), in table order."""
    kept = [r for r in rows if (r["goals"], r["planner"]) != (row["goals"], row["planner"])]
    return sorted([*kept, row], key=_row_order)


def earlier_rows(path: Path, protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier results file made under the same ``protocol`` (seed, model,
    graph), so a run of some goal distances adds to a table instead of replacing it."""
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    return earlier["rows"] if earlier.get("protocol") == protocol else []


class PairLog:
    """Per-pair results of every row, appended as JSON lines, with the planner's RNG state."""

    def __init__(self, path: Path, common: dict[str, Any]) -> None:
        self.path = path
        self.common = common

    def _key(self, row: dict[str, Any]) -> str:
        return json.dumps({**self.common, **row}, sort_keys=True, default=str)

    def _chains(self) -> dict[str, list[dict[str, Any]]]:
        """Per row key, the logged pairs 0, 1, 2, ... in order (a line cut by a kill, and any
        pair logged after a gap, is dropped: it reruns)."""
        chains: dict[str, list[dict[str, Any]]] = {}
        if not self.path.exists():
            return chains
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: the pair reruns
                continue
            chain = chains.setdefault(entry["key"], [])
            if entry["index"] == len(chain):
                chain.append(entry)
        return chains

    def resume(self, row: dict[str, Any], pairs: list[Pair],
               generator: torch.Generator) -> list[PairResult]:  # fmt: skip
        """The logged results of ``row``'s first pairs; restores ``generator`` to after them."""
        chain = self._chains().get(self._key(row), [])[: len(pairs)]
        if chain and chain[-1]["rng"]:  # (none kept mid-chain: all the pairs asked are done)
            state = base64.b64decode(chain[-1]["rng"])
            generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
        return [PairResult(**{**entry["result"], "plan_seconds":
                              tuple(entry["result"]["plan_seconds"])})
                for entry in chain]  # fmt: skip

    def write_compact(self, path: Path) -> None:
        """Write the log to ``path`` with the RNG state only where a resume reads it (each row's
        last pair): the per-pair results committed beside a results table."""
        lines = []
        for chain in self._chains().values():
            for position, entry in enumerate(chain):
                keep = position == len(chain) - 1
                lines.append(json.dumps(entry if keep else {**entry, "rng": None}))
        write_text_atomic(path, "".join(line + "\n" for line in lines))

    def seed_from(self, path: Path) -> None:
        """Start an absent log from a compact copy (``write_compact``) so a run resumes from
        committed per-pair results."""
        if not self.path.exists() and path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, path.read_text())

    def recorder(self, row: dict[str, Any], generator: torch.Generator):
        """An ``on_episode`` callback appending each finished pair of ``row``."""
        key = self._key(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def record(index: int, pair: Pair, episode: Episode) -> None:
            rng = base64.b64encode(generator.get_state().numpy().tobytes()).decode()
            entry = {
                "key": key,
                "index": index,
                "result": asdict(PairResult.from_episode(pair, episode)),
                "rng": rng,
            }
            with open(self.path, "a+b") as handle:
                cut = handle.tell() > 0 and (handle.seek(-1, 2), handle.read(1))[1] != b"\n"
                handle.write(("\n" if cut else "").encode() + json.dumps(entry).encode() + b"\n")

        return record


def markdown(result: dict) -> str:
    graph = result["graph"]
    lines = [
        f"{result['env']}: flat CEM against the hierarchical planner (the same CEM reaching "
        f"subgoals from a graph of {graph['nodes']} latents of {graph['episodes']} training "
        "episodes), shipped model, regenerated held-out pairs.",
        "",
        "| goals | budget | planner | success (95% CI) | steps to success | plan p50 |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["ci95"]
        steps = row["steps_to_success_mean"]
        lines.append(
            f"| {row['goals']} | {row['budget']} | {row['planner']} | "
            f"{100 * row['success_rate']:.0f}% ({100 * low:.0f}-{100 * high:.0f}), "
            f"n={row['pairs']} | {'-' if steps is None else f'{steps:.1f}'} | "
            f"{1000 * row['plan_p50_s']:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
