"""Sharding RTL regressions over a Dask distributed cluster.

Without a scheduler, :func:`rtlgen.verify.harness.run_regression` (and so ``rtlgen sim``) runs its shards as local harness
processes: the compiled Verilator harness is itself the process pool, there is nothing to start. With a scheduler
the same shards become Dask tasks:

* ``scheduler="local"``: a ``distributed.LocalCluster`` of worker processes on this machine, started for the run and
  closed after it (one worker per core, one thread each);
* ``scheduler="tcp://HOST:PORT"``, or the environment variable ``RTLGEN_DASK_SCHEDULER``: a running Dask cluster;
* a ``distributed.Client`` object: used as it is (not closed).

What travels: each task carries its frames (packed input beats), the weight image where the design has one, and the
compiled harness **executable as bytes** (scattered once to every worker, then written to the worker's temp folder
``rtlgen-harness/<sha256>/`` and reused by later tasks). Workers therefore need only Python with ``rtlgen`` (for
:func:`rtlgen.verify.harness.run_shard`) and ``distributed`` installed, and the same OS/C++ runtime as the machine that
compiled the harness (it is a dynamically linked Linux executable: libstdc++, libc); they need neither Verilator nor
the build folder. The golden model and the comparison run on the client. Progress comes back as Dask events
(``Worker.log_event`` on topic ``rtlgen-frames``), so the progress bar moves while the shards run.

Running on a cluster::

    # a scheduler and workers by hand (any machines that can reach each other)
    dask scheduler --port 8786                      # prints tcp://HOST:8786
    dask worker tcp://HOST:8786 --nworkers 16 --nthreads 1   # on each worker machine
    RTLGEN_DASK_SCHEDULER=tcp://HOST:8786 rtlgen sim build --limit 10000
    # or in Python: run_sim("build", pixels, labels, scheduler="tcp://HOST:8786", shards=64)

    # SLURM or LSF through dask-jobqueue (pip install dask-jobqueue): workers are batch jobs
    from dask_jobqueue import SLURMCluster          # or LSFCluster, PBSCluster, SGECluster
    from distributed import Client
    cluster = SLURMCluster(cores=8, processes=8, memory="16GB", walltime="01:00:00", queue="normal")
    cluster.scale(jobs=4)                           # 4 batch jobs x 8 single-threaded workers
    client = Client(cluster)
    run_sim("build", pixels, labels, scheduler=client, shards=32)
    # or pass cluster.scheduler_address as --scheduler / RTLGEN_DASK_SCHEDULER from another process

Each shard starts from reset, so more shards cost one pipeline fill (a frame's latency) each and the steady-state
cycles per frame are pooled over shards (see :func:`rtlgen.verify.harness.steady_cycles`); results are bit-exact and
independent of the shard count.
"""

from __future__ import annotations

import hashlib
import os

ENV = "RTLGEN_DASK_SCHEDULER"
TOPIC = "rtlgen-frames"


def resolve_scheduler(scheduler):
    """``None`` -> ``$RTLGEN_DASK_SCHEDULER`` or ``None`` (local harness processes); anything else as given."""
    if scheduler is None:
        scheduler = os.environ.get(ENV) or None
    if isinstance(scheduler, str):
        scheduler = scheduler.strip()
        if scheduler in ("", "none", "off"):
            return None
        if scheduler != "local" and "://" not in scheduler:
            from ..errors import OptionError

            raise OptionError(f"scheduler {scheduler!r}: expected 'local' or a Dask address like tcp://HOST:8786")
    return scheduler


def describe(scheduler) -> str:
    if isinstance(scheduler, str):
        return "LocalCluster" if scheduler == "local" else scheduler
    return getattr(scheduler, "scheduler_info", lambda: {})().get("address", "") or type(scheduler).__name__


def _client(scheduler):
    """``(client, cluster, owned)`` for a scheduler spec."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        from ..errors import OptionError

        raise OptionError("a Dask scheduler was given but 'distributed' is not installed: pip install "
                          "'dask[distributed]'") from None
    if not isinstance(scheduler, str):
        return scheduler, None, False
    if scheduler == "local":
        cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster, True
    try:
        return Client(scheduler, timeout="20s"), None, True
    except (OSError, TimeoutError) as e:
        from ..errors import OptionError

        raise OptionError(f"cannot reach the Dask scheduler {scheduler}: {str(e).splitlines()[0]}") from None


def _task(job: dict, blob, run_shard) -> dict:
    """Runs on a worker: the shard (``run_shard``: :func:`rtlgen.verify.harness.run_shard`, shipped by reference), with
    progress events back to the client."""
    try:
        from distributed import get_worker

        w = get_worker()

        def bump(k, _w=w, _i=job["index"]):
            _w.log_event(TOPIC, {"shard": _i, "frames": k})
    except (ImportError, ValueError):
        bump = None
    job = dict(job, exe=None, exe_blob=blob, workdir=None)
    return run_shard(job, bump)


def run_on_dask(scheduler, harness, make_jobs, run_shard, frames: int, shards: int | None, progress,
                reporter=None) -> tuple[list, dict]:
    """Shard ``frames`` frames over Dask: ``make_jobs(k)`` gives the ``k`` shard jobs
    (:func:`rtlgen.verify.harness.shard_jobs`), ``run_shard`` runs one on a worker. Returns ``(per-shard results as
    run_shard's, engine info for the result dict)``."""
    client, cluster, owned = _client(scheduler)
    try:
        info = client.scheduler_info()
        addr = info.get("address", "")
        nthreads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()) or 1
        k = shards or max(1, min(2 * nthreads, frames // 4))
        jobs = make_jobs(k)
        blob = harness.exe.read_bytes()
        sha = hashlib.sha256(blob).hexdigest()
        if reporter is not None:
            reporter.say(f"Dask: {len(jobs)} shards on {len(info.get('workers', {}))} workers ({nthreads} threads) "
                         f"at {addr}; shipping the harness ({len(blob) / 1e6:.1f} MB)")
        [fblob] = client.scatter([blob], broadcast=True, hash=False)
        seen: set = set()

        def handler(event):
            _, msg = event
            if progress is not None:
                progress(int(msg["frames"]))

        try:
            client.subscribe_topic(TOPIC, handler)
            subscribed = True
        except Exception:  # an old scheduler without events: progress per finished shard
            subscribed = False
        futs = [client.submit(_task, dict(j, exe_sha=sha), fblob, run_shard, pure=False, key=f"rtlgen-shard-{sha[:8]}-{i}-{os.urandom(4).hex()}")
                for i, j in enumerate(jobs)]
        from distributed import as_completed

        for fut in as_completed(futs):
            if fut.status == "error":
                fut.result()  # raises the worker's error here
            if not subscribed and progress is not None:
                i = futs.index(fut)
                if i not in seen:
                    seen.add(i)
                    progress(jobs[i]["n"])
        res = client.gather(futs)
        if subscribed:
            try:
                client.unsubscribe_topic(TOPIC)
            except Exception:
                pass
        return res, {"engine": "dask", "scheduler": "LocalCluster" if scheduler == "local" else addr,
                     "dask_workers": len(info.get("workers", {}))}
    finally:
        if owned:
            client.close()
            if cluster is not None:
                cluster.close()
