"""Ship a trained policy: ``python -m factorion.train.export CKPT [--out factorion/policy/default.pt]``.

Reads a BC Lightning checkpoint or a ``Policy.save`` file and writes ``{"config", "state_dict"}`` with
the floating-point tensors in half precision (what ``factorion build`` loads by default; ``make policy``
runs it), atomically; refuses to write more than ``--max-mb`` (2 MB). ``Policy.load_from_checkpoint``
reads it back in float32."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "policy" / "default.pt"


def export(ckpt: str | Path, out: str | Path = DEFAULT_OUT, max_mb: float = 2.0, note: str = "") -> dict:
    import torch

    from factorion.policy.model import Policy

    policy = Policy.load_from_checkpoint(str(ckpt))
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in policy.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"config": policy.config.to_dict(), "state_dict": state, "note": note}, tmp)
        size = os.path.getsize(tmp)
        if size > max_mb * 2**20:
            raise ValueError(f"{ckpt}: the half-precision policy takes {size / 2**20:.2f} MB > {max_mb} MB")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"out": str(out), "bytes": size, "params": policy.num_params()}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m factorion.train.export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a BC Lightning checkpoint (.ckpt) or a Policy.save file")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--max-mb", type=float, default=2.0)
    p.add_argument("--note", default="", help="free text stored with the weights (how they were trained)")
    args = p.parse_args(argv)
    r = export(args.checkpoint, args.out, args.max_mb, args.note)
    print(f"wrote {r['out']}: {r['params']:,} parameters, {r['bytes'] / 1024:.0f} KiB (half precision)")
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
