"""One inference on a loaded version: the request checked against the model, run inline, in the pool or through
the batcher, and its statistics and compute/queue/batch metrics recorded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

import numpy.typing as npt

from modelyard_runtime.errors import BadRequestError, InferenceFailedError, ServingError, public_message
from modelyard_runtime.protocol.classification import classify
from modelyard_runtime.server.batcher import INLINE_BELOW_NS, Outputs, Timing, next_estimate
from modelyard_runtime.server.versions import LoadedModel, run_timed

log = logging.getLogger("modelyard.server")


async def run_unbatched(
    model: LoadedModel, inputs: dict[str, npt.NDArray[Any]], names: list[str], pool: Executor
) -> tuple[Outputs, Timing]:
    """One run without the batcher: on the loop thread while the model's runs average below INLINE_BELOW_NS (a hop
    to the pool would cost more than the run), in the pool otherwise; the run updates that average."""
    inline = model.compute_ewma_ns < INLINE_BELOW_NS
    if inline:
        outputs, timing = run_timed(model.backend, inputs, names)
    else:
        loop = asyncio.get_running_loop()
        outputs, timing = await loop.run_in_executor(pool, run_timed, model.backend, inputs, names)
    model.compute_ewma_ns = next_estimate(model.compute_ewma_ns, timing.infer_ns, inline=inline)
    return outputs, timing


async def run_inference(
    model: LoadedModel,
    inputs: dict[str, npt.NDArray[Any]],
    datatypes: dict[str, str],
    output_names: list[str] | None,
    pool: Executor,
    classes: Mapping[str, int] | None = None,
) -> Outputs:
    """Validate and run one request. A client's mistake is a BadRequestError before the model sees anything; a
    model that fails on valid inputs is an InferenceFailedError (500) whose reason keeps no internal names.

    ``classes`` maps outputs asked for with the classification extension to their class count (0: not classified):
    those come back as their top classes (:mod:`~modelyard_runtime.protocol.classification`)."""
    started = time.perf_counter_ns()
    classes = {name: count for name, count in (classes or {}).items() if count}
    try:
        model.validate(inputs, datatypes)
        known = {o.name: o.datatype for o in model.backend.outputs}
        names = output_names or list(known)
        for name in names:
            if name not in known:
                raise BadRequestError(f"model {model.name} has no output {name!r}; outputs: {', '.join(known)}")
        for name in classes:
            if known[name] == "BYTES":
                raise BadRequestError(f"output {name!r} is BYTES: classification needs a numeric output")
        if model.batcher is not None:
            outputs, timing = await model.batcher.submit(inputs)
            outputs = {n: outputs[n] for n in names}
        else:
            outputs, timing = await run_unbatched(model, inputs, names, pool)
    except ServingError:
        model.stats.record_failure(time.perf_counter_ns() - started)
        raise
    except Exception as exc:  # the model itself failed: say so through the error table, not as a crash
        model.stats.record_failure(time.perf_counter_ns() - started)
        log.warning("inference of %s version %s failed: %s", model.name, model.version, exc)
        reason = public_message(str(exc))
        raise InferenceFailedError(f"model {model.name} version {model.version} failed: {reason}") from exc
    for name, count in classes.items():
        labels = model.labels.get(name, ())
        outputs[name] = classify(outputs[name], count, batched=model.max_batch_size > 0, labels=labels, output=name)
    rows = next(iter(inputs.values())).shape[0] if model.max_batch_size > 0 and inputs else 1
    model.stats.record_success(time.perf_counter_ns() - started, int(rows), timing)
    if model.metrics is not None:
        model.metrics.compute.observe(timing.infer_ns / 1e9)
        model.metrics.queue.observe(timing.queue_ns / 1e9)
        if timing.leader:
            model.metrics.batch_size.observe(timing.batch_size)
    return outputs
