"""The behaviour-cloning LightningModule (:class:`BCModule`: teacher-forced cross-entropy of every
action stage + value MSE, accuracies, and a greedy roll-out metric in validation) and the
single-task greedy :func:`rollout` it uses. See :mod:`factorion.train.bc` for the whole picture."""

from __future__ import annotations

import math
import warnings

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from factorion.env.masks import DEFAULT_MAX_ITEMS, STAGES
from factorion.policy.adapters import stage_mask, valid_actions
from factorion.policy.model import Policy, PolicyConfig
from factorion.policy.rollout import rollout as run_policy
from factorion.tasks.base import restored


# ---------------------------------------------------------------------------------- roll-out
def rollout(
    policy: Policy, task, max_steps: int | None = None, greedy: bool = True,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> dict:
    """Run ``policy`` on ``task`` (:func:`factorion.policy.rollout.rollout`, one env) until it
    finishes or ``max_steps``. Returns ``world`` (final), ``restored`` (share of the removed
    throughput restored, clipped to [0, 1]; NaN when nothing was missing), ``ratio``, ``steps``,
    ``return``, ``finished`` (the episode ended by itself)."""
    from factorion.env.vector import FactorioVectorEnv

    cfg = policy.config
    env = FactorioVectorEnv(1, task.world.shape, autoreset_mode="disabled", max_items=max_items,
                            max_recipes=cfg.max_recipes, entities=cfg.entities)
    res = run_policy(policy, env, [task], greedy, seed=None, max_steps=max_steps)
    thr0, thr = float(res["throughput_start"][0]), float(res["throughput"][0])
    return {
        "world": env.world(0).copy(),
        "restored": restored(thr, thr0, task.reference),
        "ratio": float(res["ratio"][0]),
        "steps": int(res["steps"][0]),
        "return": float(res["return"][0]),
        "finished": bool(res["ended"][0]),
    }


# ---------------------------------------------------------------------------------- lightning module
class BCModule(L.LightningModule):
    """Behaviour cloning of the planner (see the module docstring). ``policy_config``: a dict
    (:meth:`PolicyConfig.to_dict`) or ``None`` for ``preset``."""

    def __init__(
        self,
        policy_config: dict | None = None,
        preset: str = "default",
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 200,
        max_steps: int = 0,
        value_coef: float = 0.1,
        rollout_every: int = 1,
        rollout_max_steps: int = 0,
    ):
        super().__init__()
        cfg = PolicyConfig.from_dict(policy_config) if policy_config else PolicyConfig.preset(preset)
        self.save_hyperparameters()
        self.hparams["policy_config"] = cfg.to_dict()  # what Policy.load_from_checkpoint reads
        self.policy = Policy(cfg)
        self._val_rounds = 0
        #: an optimiser state to continue from (:meth:`carry_optimizer`): the next fit() loads it and
        #: skips the warm-up, so DAgger's rounds run one AdamW instead of restarting it each round
        self.optimizer_carry: dict | None = None

    # ------------------------------------------------------------------ steps
    def _evaluate(self, batch: dict, unmasked: bool = False) -> tuple[torch.Tensor, dict]:
        pol = self.policy
        obs, masks, act = batch["obs"], batch["masks"], batch["action"]
        enc = pol.encode(obs)
        out = pol.head(enc, masks, act)
        value = pol.value_from(enc)
        ce = -out["stage_logprob"]  # (B, 5)
        loss_pi = ce.sum(1).mean()
        vt = batch["value_target"].float()
        ok = torch.isfinite(vt)
        loss_v = F.mse_loss(value[ok], vt[ok]) if bool(ok.any()) else value.sum() * 0.0
        loss = loss_pi + self.hparams.value_coef * loss_v
        B = act.shape[0]
        m = {"loss": loss, "loss_pi": loss_pi, "loss_value": loss_v}
        hit = out["argmax"] == act
        for s, stage in enumerate(STAGES):
            allowed = stage_mask(masks, stage, [act[:, i] for i in range(s)], pol.fp_index).sum(-1)
            decision = allowed > 1
            m[f"ce_{stage}"] = ce[:, s].mean()
            if bool(decision.any()):
                m[f"acc_{stage}"] = hit[decision, s].float().mean()
        m["acc_action"] = hit.all(1).float().mean()
        if unmasked:
            free = pol.head(enc, None, greedy=True)["action"]
            m["valid_unmasked"] = valid_actions(masks, free, pol.fp_index).float().mean()
        return loss, {k: (v.detach(), B) for k, v in m.items()}

    def training_step(self, batch, batch_idx):
        loss, m = self._evaluate(batch)
        for k, (v, B) in m.items():
            self.log(f"train/{k}", v, batch_size=B, prog_bar=k in ("loss", "acc_action"))
        return loss

    def validation_step(self, batch, batch_idx):
        _, m = self._evaluate(batch, unmasked=True)
        for k, (v, B) in m.items():
            self.log(f"val/{k}", v, batch_size=B, prog_bar=k in ("loss", "acc_action"), sync_dist=True)

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and getattr(dm, "train_set", None) is not None:
            dm.train_set.set_epoch(self.current_epoch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self._val_rounds += 1
        every = self.hparams.rollout_every
        dm = getattr(self.trainer, "datamodule", None)
        if not every or (self._val_rounds - 1) % every or dm is None or not hasattr(dm, "rollout_tasks"):
            return
        try:
            tasks = self._rollout_tasks(dm)
        except ImportError as exc:  # the simulator / task generator is not there
            warnings.warn(f"roll-out skipped: {exc}", stacklevel=2)
            return
        res = []
        for t in tasks:
            try:
                res.append(rollout(self.policy, t, max_steps=self._rollout_limit(t)))
            except (ImportError, ValueError) as exc:  # no simulator; a task the env cannot take
                warnings.warn(f"roll-out of one task skipped: {exc!r}", stacklevel=2)
        if not res:
            return
        shares = [r["restored"] for r in res if not math.isnan(r["restored"])]
        self.log("val/restored", float(np.mean(shares)) if shares else 0.0, sync_dist=True)
        self.log("val/rollout_ratio", float(np.mean([r["ratio"] for r in res])), sync_dist=True)
        self.log("val/rollout_finished", float(np.mean([r["finished"] for r in res])), sync_dist=True)

    def _rollout_tasks(self, dm) -> list:
        if not hasattr(self, "_rollout_cache"):
            self._rollout_cache = dm.rollout_tasks()
        return self._rollout_cache

    def _rollout_limit(self, task) -> int:
        if self.hparams.rollout_max_steps:
            return self.hparams.rollout_max_steps
        n = task.n_expert
        if n is None:
            n = len(task.removed) or task.world.height * task.world.width // 4
        return 2 * int(n) + 4

    # ------------------------------------------------------------------ optimisation
    def carry_optimizer(self) -> None:
        """Keep the current fit's optimiser state for the next fit() of this module."""
        self.optimizer_carry = self.trainer.optimizers[0].state_dict()

    def on_train_start(self) -> None:
        if self.optimizer_carry is not None:
            self.trainer.optimizers[0].load_state_dict(self.optimizer_carry)
            self.optimizer_carry = None

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.policy.named_parameters():
            (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
            betas=(0.9, 0.95),
        )
        warm, total = max(1, self.hparams.warmup_steps), self.hparams.max_steps
        if self.optimizer_carry is not None:
            warm = 1  # a continued optimiser: its moments are warm

        def f(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if total and total > warm:
                t = min(1.0, (step - warm) / (total - warm))
                return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
