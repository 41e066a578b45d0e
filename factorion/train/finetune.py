"""PPO fine-tuning entry point: ``python -m factorion.train.finetune [--init models/bc/last.ckpt | --scratch]
[--minutes 30] [--total-steps N] [--smoke] [--resume] ...``.

Thin: the flags are the fields of :class:`factorion.train.ppo.Args` (``--kebab-case``; booleans as
``--flag`` / ``--no-flag``, tuples as lists), then :func:`factorion.train.ppo.train`. Outputs go to
``<out>/<run>`` (default ``models/ppo/finetune``, ``.../scratch`` with ``--scratch``,
``.../smoke`` with ``--smoke``): ``metrics.csv``, ``last.ckpt`` (``--resume`` continues it),
``policy.pt``, ``eval.json``, ``wandb/`` (offline unless ``WANDB_MODE`` says otherwise).
The same command runs on GPUs: ``--accelerator gpu --devices 4 --strategy ddp``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from factorion.train.ppo import Args, train

HELP = {
    "run": "run name (directory under --out); default smoke / scratch / finetune",
    "init": "BC checkpoint to start from; also the frozen KL reference",
    "scratch": "start from a fresh policy of --preset (no KL reference)",
    "minutes": "wall-clock budget of the whole command, evaluation included (0: none)",
    "total_steps": "env steps over all ranks (0: until --minutes)",
    "smoke": "a tiny run of about a minute (tests, demo)",
    "level": "a fixed task level instead of the curriculum (0: curriculum)",
    "families": "task families (default: every family that fits --size)",
    "critic_warmup": "first iterations train the value head only (actor frozen)",
    "bc_kl_coef": "weight of KL(pi || pi_bc), decays linearly to --bc-kl-coef-end",
    "target_kl": "per-minibatch early stop on the approximate KL (<= 0: off)",
    "max_steps": "episode step limit (truncation, bootstrapped with V(final obs))",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m factorion.train.finetune",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(Args)
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        tp, default = hints[f.name], f.default
        kw = {"default": default, "help": HELP.get(f.name, " ")}
        if tp is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(tp) is tuple:
            (inner, *_) = typing.get_args(tp)
            p.add_argument(flag, nargs="*", type=inner, **kw)
        else:
            p.add_argument(flag, type=tp, **kw)
    return p


def parse(argv: list[str] | None = None) -> Args:
    ns = build_parser().parse_args(argv)
    kw = {f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)}
    for k, v in kw.items():
        if isinstance(v, list):
            kw[k] = tuple(v)
    return Args(**kw)


def main(argv: list[str] | None = None) -> dict:
    return train(parse(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
