"""`kdasr transcribe --ray auto|local[:N]|ADDRESS`: the same batch on Ray Data, laptop or cluster.

`RayTranscriber` has the one method `run_batch` needs, `transcribe_iter`, so the local command's own
code names, writes (atomically, as each input finishes) and prints the outputs: the files are the
local run's by construction. Only the decoding moves: the inputs become a Ray dataset whose batches
are mapped through an actor pool of `Transcriber`s (one onnxruntime session set per actor, with
`threads` intra-op threads and as many Ray CPUs reserved for it); results stream back to the driver.

Addresses: `auto` connects to the cluster Ray finds (RAY_ADDRESS, or one started on this machine
with `ray start`) and otherwise starts a local instance; `local` / `local:N` always starts a private
local instance (N CPUs); anything else is a cluster address (`ray://head:10001`, `head:6379`).
On a cluster every node needs kdasr installed and must read the inputs and the model dir at the same
paths (a shared file system); the outputs are written by the driver. Needs the `ray` extra."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ...errors import KdasrError
from ...spec.decode_options import DecodeOptions
from ..prepare import AudioSlice
from ..transcriber import Failure, Result, Transcriber


@dataclass(frozen=True)
class RaySpec:
    address: str  # auto | local | local:N | a cluster address
    actors: int | None = None  # default: the cluster's CPUs // threads
    threads: int = 1  # intra-op threads (and Ray CPUs) per actor


class TranscriberActor:
    """One Ray actor: its own Transcriber, fed batches of rows (idx, path, start, duration, name)."""

    def __init__(self, transcriber_kwargs: dict, opts: DecodeOptions) -> None:
        self.t = Transcriber(**transcriber_kwargs)
        self.opts = opts

    def __call__(self, batch: dict) -> dict:
        inputs = [
            AudioSlice(path, float(start), None if math.isnan(dur) else float(dur), name or None)
            for path, start, dur, name in zip(batch["path"], batch["start"], batch["duration"], batch["name"])
        ]
        results = self.t.transcribe(inputs, self.opts)
        for k, r in enumerate(results):  # errors name the input as given, as the local run's do
            if isinstance(r, Failure) and r.source == batch["path"][k]:
                results[k] = Failure(str(batch["given"][k]), r.reason)
        return {"idx": np.asarray(batch["idx"]), "result": np.array(results + [None], dtype=object)[:-1]}


def _row(k: int, item) -> dict:
    s = item if isinstance(item, AudioSlice) else AudioSlice(item)
    given = str(s.path)
    # names stay as given (they are the results' sources); reading uses absolute paths, since
    # Ray workers do not share the driver's working directory
    name = s.name if s.name is not None else (given if isinstance(item, AudioSlice) else str(item))
    return {"idx": k, "path": os.path.abspath(given), "given": given, "start": float(s.start),
            "duration": float("nan") if s.duration is None else float(s.duration), "name": name}


def connect(address: str):
    try:
        import ray
    except ImportError:
        raise KdasrError("--ray needs the ray extra: pip install 'kdasr[ray]'") from None
    if ray.is_initialized():
        return ray, False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address == "auto":
            ray.init(**kwargs)
        elif address == "local" or address.startswith("local:"):
            cpus = address.partition(":")[2]
            if cpus and not cpus.isdigit():
                raise KdasrError(f"--ray {address}: expected local or local:N (N CPUs)")
            ray.init(address="local", num_cpus=int(cpus) if cpus else None, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise KdasrError(f"--ray {address}: cannot start or reach Ray ({str(e).splitlines()[0]})") from None
    return ray, True


class RayTranscriber:
    """Stands in for a Transcriber in `run_batch`: decoding on a Ray actor pool."""

    def __init__(self, spec: RaySpec, transcriber_kwargs: dict) -> None:
        self.spec, self.kwargs = spec, {**transcriber_kwargs, "threads": spec.threads}

    def transcribe_iter(self, inputs: Sequence, opts: DecodeOptions) -> Iterator[tuple[int, Result | Failure]]:
        if not inputs:
            return
        ray, started = connect(self.spec.address)
        try:
            import ray.data

            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # kdasr's own progress and summary report the batch
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            actors = self.spec.actors or max(1, cpus // self.spec.threads)
            actors = max(1, min(actors, len(inputs)))
            per_call = max(1, min(opts.batch_size, math.ceil(len(inputs) / actors)))
            # blocks made up front: a repartition task would wait for CPUs the actors already hold
            rows = [_row(k, item) for k, item in enumerate(inputs)]
            ds = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / per_call)))
            out = ds.map_batches(
                TranscriberActor,
                fn_constructor_kwargs={"transcriber_kwargs": self.kwargs, "opts": replace(opts)},
                batch_size=per_call,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=self.spec.threads,
                batch_format="numpy",
            )
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                for k, r in zip(batch["idx"], batch["result"]):
                    yield int(k), r
        finally:
            if started:
                ray.shutdown()
