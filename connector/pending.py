"""Choices saved on the page whose job has not written them to the CRM yet, so the page can
show them as "being saved" instead of the CRM's older state. One Redis hash per person:
config purpose key → {"granted": bool, "job_id": str}."""

import json
from collections.abc import Mapping

import redis

from connector import defaults, keys

SUBSCRIPTION_PREFIX = "subscription:"
"""Marks of subscriptions are kept under this prefix, next to the purposes' (config keys)."""


def mark_pending(connection: redis.Redis, person_id: int, choices: Mapping[str, bool],
                 job_id: str) -> None:
    """Remember ``choices`` as being saved by job ``job_id``."""
    if not choices:
        return
    key = keys.pending(person_id)
    with connection.pipeline() as pipe:
        pipe.hset(key, mapping={purpose: json.dumps({"granted": granted, "job_id": job_id})
                                for purpose, granted in choices.items()})
        pipe.expire(key, defaults.PENDING_CHOICE_TTL)
        pipe.execute()


def pending_choices(connection: redis.Redis, person_id: int) -> dict[str, dict]:
    """Return the person's choices still being saved, by config purpose key."""
    raw = connection.hgetall(keys.pending(person_id))
    return {purpose.decode(): json.loads(value) for purpose, value in raw.items()}


def clear_pending(connection: redis.Redis, person_id: int, job_id: str) -> None:
    """Forget the choices that job ``job_id`` has written (a newer save keeps its own)."""
    done = [purpose for purpose, mark in pending_choices(connection, person_id).items()
            if mark["job_id"] == job_id]
    if done:
        connection.hdel(keys.pending(person_id), *done)
