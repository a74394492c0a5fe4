"""The intake: how events reach the workers without costing the web an RQ job each.

The receiver answers SuperOffice within milliseconds, so it does one thing per event: one
Redis round trip (``accept``, a Lua script) that remembers the EventId for the dedupe window,
appends a few dozen bytes (``[kind, person id, event id]``) to a lane, and counts the outcome.
RQ jobs are made from those entries by the workers (``Promoter``), as they have room:

- **Lanes.** ``events`` (webhooks: onboarding, CRM changes, deletions) and ``backfill``
  (persons a reconciliation found: ``reconcile --all``). Events are promoted first; backfill
  only while the events lane is empty.
- **Room.** A lane is promoted while its RQ queues hold fewer than PROMOTE_AHEAD jobs, so a
  CRM import of 50,000 persons waits here at a few hundred bytes a person (the entry and its
  dedupe key), not as 50,000 job hashes of ~2 KB,
  and a person's page (the preferences queue, taken first) never waits behind it.
- **Nothing lost.** Entries are moved atomically to the promoting worker's own list, and
  leave it in the same transaction that queues their jobs. A worker that dies in between
  leaves its list behind; its heartbeat key lapses and any promoter puts the entries back
  (``recover_orphans``). A job queued twice is harmless: jobs are idempotent.
- **Job ids** stay what support knows: ``onboard-<EventId>``, ``crm-change-<EventId>``,
  ``deletion-<EventId>``; the receiver's answer names the job id its event will have.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import redis
from rq import Queue

from connector import defaults, keys, metrics
from connector.queueing import EVENT_JOBS, enqueue_event, event_job_id
from connector.settings import Settings

log = logging.getLogger(__name__)

EVENTS = "events"
BACKFILL = "backfill"
LANES = (EVENTS, BACKFILL)
"""Lanes in the order they are promoted."""


@dataclass(frozen=True)
class Entry:
    """One event waiting in a lane."""

    kind: str
    """A key of connector.queueing.EVENT_JOBS: the job it becomes."""
    person_id: int
    event_id: str

    @property
    def job_id(self) -> str:
        """The id of the job this entry becomes."""
        return event_job_id(self.kind, self.event_id)

    def encode(self) -> str:
        return json.dumps([self.kind, self.person_id, self.event_id], separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> Entry:
        kind, person_id, event_id = json.loads(raw)
        return cls(kind, int(person_id), str(event_id))


_ACCEPT = """
local fresh = redis.call('set', KEYS[1], '1', 'NX', 'EX', ARGV[1])
if fresh then redis.call('rpush', KEYS[2], ARGV[2]) end
if ARGV[3] ~= '' then
    redis.call('hincrby', KEYS[3], ARGV[3], 1)
    redis.call('hincrby', KEYS[3], fresh and ARGV[4] or ARGV[5], 1)
end
return fresh and 1 or 0
"""
"""Lua, one round trip: remember the event id (unless known), append the entry, count."""


class Intake:
    """The receiving end: ``accept`` one event in one round trip.

    Args:
        connection: the installation's Redis.
    """

    def __init__(self, connection: redis.Redis):
        self._accept = connection.register_script(_ACCEPT)

    def accept(self, entry: Entry, lane: str = EVENTS, *, webhook: bool = True,
               dedupe_ttl: int = defaults.EVENT_DEDUPE_TTL) -> bool:
        """Queue ``entry`` on ``lane`` unless its event id was seen within ``dedupe_ttl``
        seconds; a ``webhook`` is counted in /metrics too (received, and queued or
        duplicate).

        Returns:
            True when queued, False for a duplicate.

        Raises:
            redis.RedisError: Redis did not take it (nothing was queued).
        """
        counted = ("received", "queued", "duplicate") if webhook else ("", "", "")
        return bool(self._accept(
            keys=[keys.event_seen(entry.event_id), keys.intake_lane(lane), metrics.WEBHOOKS],
            args=[dedupe_ttl, entry.encode(), *counted]))


def waiting(connection: redis.Redis) -> dict[str, int]:
    """How many entries wait in each lane (not yet jobs)."""
    with connection.pipeline(transaction=False) as pipe:
        for lane in LANES:
            pipe.llen(keys.intake_lane(lane))
        return dict(zip(LANES, pipe.execute()))


def entries(connection: redis.Redis, lane: str, limit: int | None = 100) -> list[Entry]:
    """The first ``limit`` entries waiting in ``lane`` (all of them for None)."""
    last = -1 if limit is None else limit - 1
    return [Entry.decode(raw) for raw in connection.lrange(keys.intake_lane(lane), 0, last)]


_ROOM = """
local room = tonumber(ARGV[1]) - math.max(tonumber(redis.call('get', KEYS[3]) or '0'), 0)
for i = 4, #KEYS do room = room - redis.call('llen', KEYS[i]) end
"""
"""Lua: how many more jobs a lane's queues (KEYS[4:]) can take to hold ARGV[1], counting the
entries promoters have taken and not made jobs of yet (KEYS[3])."""

_TAKE = _ROOM + """
if ARGV[2] == 'exactly' then room = tonumber(ARGV[1]) end
local taken = {}
for i = 1, room do
    local entry = redis.call('lmove', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
    if not entry then break end
    taken[#taken + 1] = entry
end
if #taken > 0 then redis.call('incrby', KEYS[3], #taken) end
return taken
"""
"""Lua: move entries from the head of a lane (KEYS[1]) to a promoter's own list (KEYS[2]):
as many as there is room for ('ahead'), or ARGV[1] of them ('exactly'), and count them in
flight, in one step, so promoters side by side never overfill the lane's queues."""

_GIVE_BACK = """
local count = 0
while true do
    local entry = redis.call('rpop', KEYS[1])
    if not entry then break end
    redis.call('lpush', KEYS[2], entry)
    count = count + 1
end
if count > 0 and ARGV[1] == 'counted' then redis.call('decrby', KEYS[3], count) end
return count
"""
"""Lua: put a promoter's entries (KEYS[1]) back at the head of their lane (KEYS[2]), in their
order, and no longer count them in flight (KEYS[3]) when they were ('counted')."""


def lane_queues(lane: str) -> tuple[str, ...]:
    """The RQ queues a lane's jobs go on."""
    if lane == BACKFILL:
        return (keys.BACKFILL,)
    return tuple(dict.fromkeys(kind.queue for kind in EVENT_JOBS.values()))


class Promoter:
    """Turns lane entries into RQ jobs, in a worker process (``run`` in a thread, or
    ``promote`` in a loop for ``worker --burst``).

    Args:
        connection: a Redis client of its own (it blocks waiting for events, in a thread
            beside the jobs).
        settings: for the jobs' retry policy.
        holder: a name unique to this process (the RQ worker's name).
        ahead: most jobs a lane keeps queued in RQ (PROMOTE_AHEAD).
    """

    def __init__(self, connection: redis.Redis, settings: Settings, holder: str,
                 ahead: int = defaults.PROMOTE_AHEAD):
        self.connection = connection
        self.settings = settings
        self.holder = holder
        self.ahead = ahead
        self._take = connection.register_script(_TAKE)
        self._room_left = connection.register_script(_ROOM + "return room")
        self._give_back = connection.register_script(_GIVE_BACK)
        self.stopping = threading.Event()
        self._next_recovery = 0.0

    def promote(self, room: int | None = None) -> int:
        """Promote what the lanes hold, within each lane's room (``room`` overrides it, for a
        burst); backfill only while no event waits. Returns how many jobs were queued."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.set(keys.intake_holder(self.holder), "1", ex=defaults.PROMOTER_SILENCE)
            pipe.sadd(keys.INTAKE_HOLDERS, self.holder)
            pipe.execute()
        queued = 0
        for lane in LANES:
            if lane == BACKFILL and self.connection.llen(keys.intake_lane(EVENTS)):
                break
            raw = self._take(keys=self._lane_keys(lane),
                             args=[self.ahead, "ahead"] if room is None else [room, "exactly"])
            queued += self._queue(lane, [Entry.decode(item) for item in raw])
        return queued

    def run(self) -> None:
        """Promote until ``stopping`` is set: whatever is there, else wait (PROMOTE_WAIT at
        most) for the next event. Redis errors are logged and the loop goes on; the first
        round after one gives back what the error may have left in this promoter's hands."""
        interrupted = False
        while not self.stopping.is_set():
            try:
                if interrupted:
                    self.recover_own()
                    interrupted = False
                if time.monotonic() >= self._next_recovery:
                    recover_orphans(self.connection, self._give_back)
                    self._next_recovery = time.monotonic() + defaults.PROMOTER_SILENCE / 2
                if self.promote() or self._wait_for_an_event():
                    continue
            except redis.RedisError as error:
                log.warning("intake.promote_failed error=%s", type(error).__name__)
                interrupted = True
                self.stopping.wait(defaults.PROMOTE_WAIT)

    def recover_own(self) -> int:
        """Put back at the head of their lanes the entries this promoter holds without having
        made jobs of them; return how many. Between two rounds it holds none, unless a
        connection broke in the middle of one: Redis moved an event to this promoter (the
        wait's BLMOVE) but its answer was lost, or the jobs' transaction never ran. (One that
        ran deleted the entries with it.)"""
        recovered = _give_back_held(self._give_back, self.holder)
        if recovered:
            log.warning("intake.recovered holder=%s entries=%d", self.holder, recovered)
        return recovered

    def _wait_for_an_event(self) -> bool:
        """Block until an event arrives (then queue its job) or PROMOTE_WAIT passes; when the
        events' queues are full, just wait."""
        if self._room(EVENTS) <= 0:
            self.stopping.wait(defaults.PROMOTE_WAIT)
            return False
        raw = self.connection.blmove(keys.intake_lane(EVENTS), keys.intake_arrived(self.holder),
                                     defaults.PROMOTE_WAIT, "LEFT", "RIGHT")
        if raw is None:
            return False
        return bool(self._queue(EVENTS, [Entry.decode(raw)], arrived=True))

    def _taken(self, lane: str) -> str:
        return keys.intake_taken(self.holder, lane)

    def _room(self, lane: str) -> int:
        return self._room_left(keys=self._lane_keys(lane), args=[self.ahead])

    def _lane_keys(self, lane: str) -> list[str]:
        """The keys _ROOM and _TAKE work on: the lane, this promoter's list of it, the count
        in flight, the lane's queues."""
        return [keys.intake_lane(lane), self._taken(lane), keys.intake_in_flight(lane),
                *(Queue(name, connection=self.connection).key for name in lane_queues(lane))]

    def _queue(self, lane: str, taken: list[Entry], arrived: bool = False) -> int:
        """Queue the jobs of entries this promoter holds (taken from ``lane``, or the event its
        wait took, ``arrived``) and let go of them, in one transaction."""
        if not taken:
            return 0
        with self.connection.pipeline(transaction=True) as pipe:
            for entry in taken:
                enqueue_event(self.connection, self.settings, entry.kind, entry.person_id,
                              entry.event_id, pipeline=pipe,
                              queue=keys.BACKFILL if lane == BACKFILL else None)
            if arrived:  # never counted in flight
                pipe.delete(keys.intake_arrived(self.holder))
            else:
                pipe.delete(self._taken(lane))
                pipe.decrby(keys.intake_in_flight(lane), len(taken))
            pipe.execute()
        for entry in taken:  # the receiver answered without a log line: this is the event's
            log.info("event.queued event_id=%s person_id=%s job_id=%s lane=%s",
                     entry.event_id, entry.person_id, entry.job_id, lane)
        return len(taken)


def recover_orphans(connection: redis.Redis, give_back=None) -> int:
    """Put back at the head of their lanes the entries of promoters that stopped beating for
    PROMOTER_SILENCE seconds (a worker killed between taking entries and queueing their
    jobs); return how many."""
    give_back = give_back or connection.register_script(_GIVE_BACK)
    recovered = 0
    for raw_holder in connection.smembers(keys.INTAKE_HOLDERS):
        holder = raw_holder.decode()
        if connection.exists(keys.intake_holder(holder)):
            continue
        given = _give_back_held(give_back, holder)
        connection.srem(keys.INTAKE_HOLDERS, holder)
        log.warning("intake.recovered holder=%s entries=%d", holder, given)
        recovered += given
    return recovered


def _give_back_held(give_back, holder: str) -> int:
    """Put the entries ``holder`` holds (the event its wait took, what it took of each lane)
    back at the head of their lanes; return how many."""
    given = give_back(keys=[keys.intake_arrived(holder), keys.intake_lane(EVENTS),
                            keys.intake_in_flight(EVENTS)], args=["uncounted"])
    for lane in LANES:
        given += give_back(keys=[keys.intake_taken(holder, lane), keys.intake_lane(lane),
                                 keys.intake_in_flight(lane)], args=["counted"])
    return given
