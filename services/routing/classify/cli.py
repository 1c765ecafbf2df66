"""`python -m services.routing model build|show` and `python -m services.routing retrain`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from services.infra.config import Env
from services.routing.classify import corrections as corrections_mod
from services.routing.classify.corpus import CorpusError, Example
from services.routing.classify.model import Evaluation, ModelError
from services.routing.classify.store import ModelStore, model_dir
from services.routing.classify.training import DEFAULT_TOLERANCE, build, retrain


def add_commands(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="build or show the classifier model")
    actions = model.add_subparsers(dest="model_command", required=True)
    build_cmd = actions.add_parser(
        "build", help="train on the corpus and corrections, measure on the held-out split, "
        "save and make it current")
    build_cmd.add_argument("--if-missing", action="store_true",
                           help="do nothing when a usable current model exists")
    show = actions.add_parser("show", help="print the current model's card")
    retrain_cmd = sub.add_parser(
        "retrain", help="rebuild from corpus + corrections; promote only if not worse on "
        "the held-out split")
    retrain_cmd.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                             help="accept a drop in held-out accuracy or macro-F1 up to this "
                             f"much (default {DEFAULT_TOLERANCE}: half a point; 0: none)")
    for cmd in (build_cmd, show, retrain_cmd):
        cmd.add_argument("--out", type=Path, default=None,
                         help="model directory (default ROUTING_MODEL_DIR or var/model)")
    for cmd in (build_cmd, retrain_cmd):
        cmd.add_argument("--no-corrections", action="store_true",
                         help="learn from the corpus alone")


def _corrections(args, env: Env) -> list[Example]:
    if args.no_corrections:
        return []
    url = env.database_url("ROUTING_DATABASE_URL", "routing")
    try:
        return corrections_mod.read_if_present(url)
    except SQLAlchemyError as exc:
        raise ModelError(f"cannot read corrections from routing's database "
                         f"({type(exc).__name__}); check ROUTING_DATABASE_URL, or pass "
                         "--no-corrections to learn from the corpus alone") from None


def _figures(evaluation: Evaluation) -> str:
    return (f"accuracy {evaluation.accuracy:.1%}, macro-F1 {evaluation.macro_f1:.3f}, "
            f"subcategory accuracy {evaluation.subcategory_accuracy:.1%} "
            f"({evaluation.examples} held-out examples)")


def report(card: dict, out=sys.stdout) -> None:
    """The card in words: what an operator checks after a build."""
    held = Evaluation.from_dict(card["held_out"])
    print(f"model {card['version']}: {_figures(held)}", file=out)
    print(f"  trained on {card['training_examples']} examples ({card['corrections']} "
          f"corrections) in {card['train_seconds']}s, built {card['built_at']}", file=out)
    if held.confused:
        pairs = ", ".join(f"{t}->{p} ({n})" for t, p, n in held.confused)
        print(f"  most confused (true->predicted): {pairs}", file=out)
    weakest = sorted(held.per_category_f1.items(), key=lambda kv: kv[1])[:3]
    print("  lowest F1: " + ", ".join(f"{c} {f:.2f}" for c, f in weakest), file=out)
    if held.by_confidence:
        print("  at confidence >= " + ", ".join(
            f"{t}: {share:.0%} of reports, {accuracy:.1%} right"
            for t, (share, accuracy) in held.by_confidence.items()), file=out)


def main(args, env: Env) -> int:
    store = ModelStore(args.out or model_dir(env))
    try:
        if args.command == "model" and args.model_command == "show":
            version = store.current()
            if version is None or not store.has(version):
                print(f"no model in {store.root}: run `make model`", file=sys.stderr)
                return 1
            report(store.card(version))
            return 0
        if args.command == "model":
            if args.if_missing:
                try:
                    store.load()
                except ModelError:
                    pass
                else:
                    return 0
            result = build(store, _corrections(args, env))
            store.promote(result.version)
            report(result.card)
            state = "built and made current" if result.built else "already built; made current"
            print(f"  {state} in {result.directory}")
            return 0
        outcome = retrain(store, _corrections(args, env), tolerance=args.tolerance)
        if outcome.before is not None:
            print(f"before ({outcome.previous}): {_figures(outcome.before)}")
        else:
            print("before: no usable current model")
        print(f"after  ({outcome.result.version}): {_figures(outcome.result.evaluation)}")
        print(f"{outcome.reason}; {outcome.result.card['corrections']} corrections learnt")
        # Not promoting for being worse is an outcome to notice (a scheduled retrain alerts).
        return 0 if outcome.promoted or outcome.result.version == outcome.previous else 1
    except (CorpusError, ModelError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
