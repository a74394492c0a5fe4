"""The intake (connector.intake) against a real Redis: one round trip per event, the lanes,
and the workers' promoter that makes RQ jobs of them without losing or doubling any."""

import pytest
from rq import Queue

from connector import keys, metrics
from connector.intake import (BACKFILL, EVENTS, Entry, Intake, Promoter, entries,
                              recover_orphans, waiting)
from connector.keys import BACKFILL as BACKFILL_QUEUE
from connector.keys import HISTORY, ONBOARDING
from tests.conftest import new_event_id, own_database, run_command

pytestmark = pytest.mark.integration


@pytest.fixture
def own(connector_env):
    return own_database(connector_env, 7)


@pytest.fixture
def db(own):
    return own[1]


def onboarding(person_id: int) -> Entry:
    return Entry("onboard", person_id, new_event_id())


def test_an_event_is_taken_once_in_one_round_trip_and_counted(db):
    intake, entry = Intake(db), onboarding(5)
    intake.accept(onboarding(4))  # the first call loads the script into Redis
    commands = []
    original = db.execute_command

    def counting(*args, **options):
        commands.append(args[0])
        return original(*args, **options)

    db.execute_command = counting
    try:
        assert intake.accept(entry) is True
    finally:
        db.execute_command = original
    assert commands == ["EVALSHA"]  # dedupe, lane and counters in one script

    assert intake.accept(entry) is False  # the same EventId again: a duplicate
    assert entries(db, EVENTS)[1:] == [entry]
    assert 0 < db.ttl(keys.event_seen(entry.event_id)) <= 7 * 24 * 3600
    counted = {field.decode(): int(value) for field, value in db.hgetall(metrics.WEBHOOKS).items()}
    assert (counted["received"], counted["queued"], counted["duplicate"]) == (3, 2, 1)


def test_what_is_not_a_webhook_is_not_counted_as_one(db):
    Intake(db).accept(onboarding(6), BACKFILL, webhook=False)

    assert waiting(db) == {EVENTS: 0, BACKFILL: 1}
    assert not db.exists(metrics.WEBHOOKS)


def test_the_promoter_makes_the_jobs_support_knows_on_each_kinds_queue(db, settings):
    intake = Intake(db)
    created, changed = onboarding(7), Entry("crm-change", 7, new_event_id())
    intake.accept(created)
    intake.accept(changed)

    assert Promoter(db, settings, holder="worker-a").promote() == 2

    (job,) = Queue(ONBOARDING, connection=db).jobs
    assert (job.id, job.args, job.meta["person_id"]) == (
        f"onboard-{created.event_id}", (7, created.event_id), 7)
    assert [job.id for job in Queue(HISTORY, connection=db).jobs] == [
        f"crm-change-{changed.event_id}"]
    assert waiting(db) == {EVENTS: 0, BACKFILL: 0}


def test_a_big_import_waits_in_the_intake_and_only_a_few_jobs_at_a_time_are_made(db, settings):
    intake = Intake(db)
    for person_id in range(1, 251):
        intake.accept(onboarding(person_id))
    promoter = Promoter(db, settings, holder="worker-a", ahead=100)

    assert promoter.promote() == 100
    assert promoter.promote() == 0  # the queue holds 100: no room until jobs are done
    assert Promoter(db, settings, holder="worker-b", ahead=100).promote() == 0  # nor for others
    assert (Queue(ONBOARDING, connection=db).count, waiting(db)[EVENTS]) == (100, 150)


def taking(promoter: Promoter, count: int) -> list:
    """What a promoter does before it queues jobs: take entries of the events lane (in the
    middle of a promotion, or killed there)."""
    return promoter._take(keys=[keys.intake_lane(EVENTS), promoter._taken(EVENTS),
                                keys.intake_in_flight(EVENTS)], args=[count, "exactly"])


def test_entries_another_promoter_is_making_jobs_of_count_against_the_room(db, settings):
    intake = Intake(db)
    for person_id in range(1, 151):
        intake.accept(onboarding(person_id))
    first = Promoter(db, settings, holder="worker-a", ahead=100)
    assert len(taking(first, 100)) == 100  # taken, its jobs not queued yet

    assert Promoter(db, settings, holder="worker-b", ahead=100).promote() == 0
    assert first._queue(EVENTS, [Entry.decode(raw) for raw in
                                 db.lrange(keys.intake_taken("worker-a", EVENTS), 0, -1)]) == 100
    assert Queue(ONBOARDING, connection=db).count == 100
    assert int(db.get(keys.intake_in_flight(EVENTS))) == 0


def test_backfill_becomes_jobs_on_its_own_queue_only_while_no_event_waits(db, settings):
    intake = Intake(db)
    intake.accept(onboarding(1), BACKFILL, webhook=False)
    for person_id in (2, 3):
        intake.accept(onboarding(person_id))
    promoter = Promoter(db, settings, holder="worker-a", ahead=1)
    onboarding_queue, backfill_queue = (Queue(name, connection=db)
                                        for name in (ONBOARDING, BACKFILL_QUEUE))

    promoter.promote()  # room for one event; the other waits, and the backfill behind it
    assert (onboarding_queue.count, backfill_queue.count) == (1, 0)
    assert waiting(db) == {EVENTS: 1, BACKFILL: 1}

    onboarding_queue.empty()  # its job is done
    promoter.promote()  # the last event, then the backfill on its own queue
    assert [job.args[0] for job in onboarding_queue.jobs] == [3]
    assert [job.args[0] for job in backfill_queue.jobs] == [1]


def test_entries_a_dead_worker_had_taken_go_back_to_their_lane_and_become_jobs(db, settings):
    intake = Intake(db)
    lost = [onboarding(person_id) for person_id in (11, 12, 13)]
    for entry in lost:
        intake.accept(entry)
    dead = Promoter(db, settings, holder="worker-dead")
    dead.promote(room=0)  # says it is alive, takes nothing
    # It takes the entries and dies before queueing their jobs:
    taking(dead, 3)
    assert waiting(db)[EVENTS] == 0

    alive = Promoter(db, settings, holder="worker-alive")
    assert recover_orphans(db) == 0  # the dead one still counts as alive for a while
    assert alive.promote() == 0

    db.delete(keys.intake_holder("worker-dead"))  # its liveness key lapses (PROMOTER_SILENCE)
    assert recover_orphans(db) == 3
    assert alive.promote() == 3
    assert [job.args[0] for job in Queue(ONBOARDING, connection=db).jobs] == [11, 12, 13]
    assert not db.exists(keys.intake_taken("worker-dead", EVENTS))
    assert int(db.get(keys.intake_in_flight(EVENTS))) == 0


def test_an_event_whose_wait_lost_its_answer_in_a_redis_outage_goes_back_and_becomes_a_job(
        db, settings):
    """The promoter's BLMOVE moved the event to it as the connection broke: the promoter never
    saw it, and stays alive, so no other promoter takes it back. Its first round after the
    error does (Promoter.run calls recover_own)."""
    Intake(db).accept(onboarding(51))
    promoter = Promoter(db, settings, holder="worker-a")
    db.lmove(keys.intake_lane(EVENTS), keys.intake_arrived("worker-a"), "LEFT", "RIGHT")
    assert waiting(db)[EVENTS] == 0 and promoter.promote() == 0

    assert promoter.recover_own() == 1
    assert promoter.recover_own() == 0
    assert promoter.promote() == 1
    assert [job.args[0] for job in Queue(ONBOARDING, connection=db).jobs] == [51]
    assert int(db.get(keys.intake_in_flight(EVENTS))) == 0


def test_the_event_a_dead_workers_wait_took_goes_back_without_skewing_the_count(db, settings):
    Intake(db).accept(onboarding(61))
    dead = Promoter(db, settings, holder="worker-dead")
    dead.promote(room=0)  # says it is alive, takes nothing
    db.lmove(keys.intake_lane(EVENTS), keys.intake_arrived("worker-dead"), "LEFT", "RIGHT")
    db.delete(keys.intake_holder("worker-dead"))  # its liveness key lapses

    assert recover_orphans(db) == 1
    assert int(db.get(keys.intake_in_flight(EVENTS)) or 0) == 0
    assert Promoter(db, settings, holder="worker-alive").promote() == 1


def test_jobs_list_names_the_events_that_wait_in_the_intake_as_no_job_yet(own, db):
    env, _ = own
    intake = Intake(db)
    mine = onboarding(31)
    intake.accept(mine)
    intake.accept(onboarding(32))
    intake.accept(onboarding(31), BACKFILL, webhook=False)

    everyone = run_command(env, "jobs", "list")
    one = run_command(env, "jobs", "list", "--person", "31")
    nobody = run_command(env, "jobs", "list", "--person", "33")

    assert (everyone.returncode, one.returncode, nobody.returncode) == (0, 0, 0)
    assert "No failed, scheduled or started jobs." in everyone.stdout
    assert ("Waiting in the intake, not jobs yet: 2 in the events lane, 1 in the backfill lane"
            in everyone.stdout)
    lines = one.stdout.splitlines()
    assert lines[0] == "No failed, scheduled or started jobs for person 31."
    assert lines[1] == ("Waiting in the intake's events lane, not a job yet: onboard for "
                        f"person 31 (will be job {mine.job_id}).")
    assert lines[2].startswith("Waiting in the intake's backfill lane, not a job yet: onboard")
    assert "Waiting" not in nobody.stdout
