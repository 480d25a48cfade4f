"""The example Hydra app: compose a config, validate it, plan, initialize, report.

    python examples/train.py                                   # ResNet, MMDet-style init
    python examples/train.py experiment=vit_small
    python examples/train.py init_strategy@model.init_cfg=caffe2_xavier
    python examples/train.py +init@model.init_cfg.extra=normal model.init_cfg.extra.std=0.001
    python examples/train.py '~init@model.init_cfg.norms'
    python examples/train.py init_seed=1234                     # seeded: same at any world size
    python examples/train.py --cfg job                          # the composed config

Every init_cfg node is validated before the model is built; a bad value prints
``Error in config PATH: …`` (once, without a traceback; the job's log file keeps it) and
the run exits with status 1.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch import nn

import initschema as ins
import initschema.hydra as ins_hydra

logger = logging.getLogger("initschema")


def build(cfg: DictConfig) -> tuple[nn.Module, ins.InitPlan, bool]:
    """Build ``cfg.model`` and compile its plan (a problem only the model can show names
    its config path): on the meta device when the plan sets every tensor (then nothing is
    allocated until ``ins.materialize``), else on the CPU. True when on the meta device."""
    if cfg.meta:
        model, plan = ins_hydra.instantiate_and_plan(
            cfg.model, cfg, strict=False, log=False, meta=True
        )
        if not ins.unwritten(model, plan):
            with ins_hydra.config_errors(cfg):  # now with its lints, strict if asked
                return model, ins.compile_plan(model, strict=cfg.strict, log=False), True
    model, plan = ins_hydra.instantiate_and_plan(cfg.model, cfg, strict=cfg.strict)
    return model, plan, False


def by_rule(plan: ins.InitPlan, report: ins.InitReport) -> Table:
    """One row per rule: how many parameters and elements it wrote last (the initializer
    with the arguments the rule sets, as the plan shows it)."""
    writers = plan.writers()
    calls = {a.source: a.brief() for a in plan.actions if a.kind == "method"}
    counts: dict[tuple[str, str], list[int]] = {}
    for row in report:
        if row.provenance is None:
            key = ("-", "unchanged (PyTorch default)")
        elif (writer := writers.get(row.path)) and writer.action.source == row.provenance.source:
            key = (row.provenance.source, writer.brief())
        else:
            source = row.provenance.source
            key = (source, calls.get(source, row.provenance.initializer))
        entry = counts.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += int(torch.Size(row.shape).numel())
    table = Table()
    for column in ("rule", "initializer", "parameters", "elements"):
        table.add_column(
            column, justify="right" if column in ("parameters", "elements") else "left"
        )
    for (source, initializer), (params, elements) in counts.items():
        table.add_row(source, initializer, str(params), f"{elements:,}")
    return table


@ins_hydra.main(config_path="../conf", config_name="config")
def train(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    # A problem only the model shows (an override naming a submodule it lacks) fails the
    # job like a bad value: ins_hydra.main prints it and exits with status 1.
    model, plan, on_meta = build(cfg)
    where = (
        "on the meta device, then materialized"
        if on_meta
        else "on the CPU: the plan does not set every tensor itself"
    )
    print(f"Built {type(model).__name__} ({where}).")
    # The lints go to the log (the terminal shows them once, the job's log file keeps
    # them); compile_plan logged them already when the model was built on the CPU. Norm
    # running statistics left on the meta device are what materialize resets: the lint
    # that says so is for plan.execute() users, not this app.
    for lint in plan.lints if on_meta else ():
        if not (lint.kind == "stays-on-meta" and lint.level == "info"):
            logger.log(logging.WARNING if lint.level == "warning" else logging.INFO, "%s", lint)
    print(plan.render(lints=()))
    torch.manual_seed(cfg.seed)
    if on_meta:
        report = ins.materialize(model, "cpu", seed=cfg.init_seed, plan=plan)
    else:
        report = plan.execute(seed=cfg.init_seed)
    Console(highlight=False).print(by_rule(plan, report))
    with torch.no_grad():
        logits = model(model.example_input(2))  # type: ignore[operator]
    print(f"forward check: logits {tuple(logits.shape)}, finite: {bool(logits.isfinite().all())}")
    if cfg.save:
        torch.save(model.state_dict(), cfg.save)
        print(f"saved the initialized state_dict to {cfg.save}")


if __name__ == "__main__":
    train()
