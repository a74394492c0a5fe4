"""What doctor and /readyz find wrong with a Redis server, from its INFO and CONFIG answers."""

from connector.redis_connection import decide_redis_problems


def test_noeviction_with_aof_is_fine():
    assert decide_redis_problems({"maxmemory_policy": "noeviction"}, {"aof_enabled": 1}, "") == []


def test_noeviction_with_rdb_snapshots_only_is_fine():
    assert decide_redis_problems({"maxmemory_policy": "noeviction"}, {"aof_enabled": 0},
                                 "3600 1 300 100") == []


def test_an_evicting_policy_is_named_with_the_fix():
    problems = decide_redis_problems({"maxmemory_policy": "allkeys-lru"}, {"aof_enabled": 1}, "")
    assert len(problems) == 1 and "allkeys-lru" in problems[0] and "noeviction" in problems[0]


def test_no_persistence_at_all_is_a_problem():
    problems = decide_redis_problems({"maxmemory_policy": "noeviction"}, {"aof_enabled": 0}, "")
    assert len(problems) == 1 and "appendonly yes" in problems[0]


def test_a_refused_config_get_without_aof_says_persistence_is_unknown():
    problems = decide_redis_problems({"maxmemory_policy": "noeviction"}, {"aof_enabled": 0}, None)
    assert len(problems) == 1 and "refused" in problems[0]
