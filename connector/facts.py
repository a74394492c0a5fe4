"""Things that happen once per person, and the proof that they did: the person was
onboarded; their confirmation mail went out. Kept in Redis (keys in connector.keys).

The confirmation mail goes out once however often its job runs: an attempt claims it
(``claim_confirmation_mail``) before sending, releases the claim when delivery fails (so a
retry sends it) and turns it into a lasting "sent" afterwards. A claim left by a worker that
died mid-send is taken over by the person's next job (which holds the person's lock, so the
holder cannot be alive), or runs out after MAIL_CLAIM_TTL; the mail then goes again (it may
have gone out before the worker died) and the ledger says so (``note_attempt``).
"""

from collections.abc import Sequence

import redis

from connector import defaults, keys

SENT, SENDING = "sent", "sending"
"""States of a person's confirmation mail; None when no attempt has claimed it."""


def mark_onboarded(connection: redis.Redis, person_id: int) -> None:
    """Remember that onboarding finished for the person (the reconciliation skips them)."""
    connection.sadd(keys.ONBOARDED, person_id)


def onboarded(connection: redis.Redis, person_ids: Sequence[int]) -> list[bool]:
    """Whether each person was onboarded, in one round trip."""
    with connection.pipeline(transaction=False) as pipeline:  # SMISMEMBER needs Redis 6.2
        for person_id in person_ids:
            pipeline.sismember(keys.ONBOARDED, person_id)
        return [bool(known) for known in pipeline.execute()]


def confirmation_mail_state(connection: redis.Redis, person_id: int) -> str | None:
    """SENT, SENDING (an attempt holds the claim) or None."""
    value = connection.get(keys.confirmation_mail(person_id))
    return value.decode() if value is not None else None


def claim_confirmation_mail(connection: redis.Redis, person_id: int) -> bool:
    """Take the claim on sending the person's confirmation mail; False when it is sent or
    another attempt holds it (``confirmation_mail_state`` tells which)."""
    return bool(connection.set(keys.confirmation_mail(person_id), SENDING, nx=True,
                               ex=defaults.MAIL_CLAIM_TTL))


def take_over_confirmation_mail(connection: redis.Redis, person_id: int) -> None:
    """Take the claim an attempt left when it died mid-send. Only for the holder of the
    person's lock (workers.jobs.one_job_per_person): no other attempt can be running then."""
    connection.set(keys.confirmation_mail(person_id), SENDING, ex=defaults.MAIL_CLAIM_TTL)


def note_attempt(connection: redis.Redis, person_id: int) -> bool:
    """Note that an attempt (holding the claim) is about to send the confirmation mail. Return
    True when an earlier attempt had noted the same and neither sent the mail nor gave the
    claim back: its worker died in the middle, perhaps after the mail server took the mail, so
    this one may send it a second time (at least once, never silently lost)."""
    fresh = connection.set(keys.confirmation_mail_attempt(person_id), "1", nx=True,
                           ex=defaults.MAIL_ATTEMPT_MEMORY)
    return not fresh


def release_confirmation_mail(connection: redis.Redis, person_id: int) -> None:
    """Give the claim back after a failed delivery (nothing went out), so a retry sends it."""
    connection.delete(keys.confirmation_mail(person_id), keys.confirmation_mail_attempt(person_id))


def mark_confirmation_mail_sent(connection: redis.Redis, person_id: int) -> None:
    """Record for good that the person's confirmation mail went out."""
    with connection.pipeline() as pipeline:
        pipeline.set(keys.confirmation_mail(person_id), SENT)
        pipeline.delete(keys.confirmation_mail_attempt(person_id))
        pipeline.execute()
