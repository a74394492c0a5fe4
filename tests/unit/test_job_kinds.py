"""connector.queueing names the jobs by dotted path; the names, parameters and queues must be
those of the functions the workers run, and support must have a dry run for each."""

import importlib
import inspect

import pytest

from connector.keys import QUEUE_NAMES
from connector.queueing import JOB_KINDS
from connector.support.dry_run import DRY_RUNS


def function_of(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("kind", JOB_KINDS.values(), ids=lambda kind: kind.function)
def test_each_job_kind_names_a_worker_function_with_its_parameters_in_order(kind):
    parameters = tuple(inspect.signature(function_of(kind.function)).parameters)
    assert kind.parameters == parameters
    assert kind.queue in QUEUE_NAMES


def test_every_job_the_connector_queues_has_a_dry_run():
    assert set(DRY_RUNS) == set(JOB_KINDS)
