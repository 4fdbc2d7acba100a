"""The client against a real Redis that a real `runner serve` consumes,
with the test fixture plugin `hostile` (its `echo`, `flaky` and `sleep`
job types), synchronous and asyncio. tests/e2e/clients.rs starts both and
runs these with JR_REDIS_URL, JR_QUEUE (consumed) and JR_CLUSTER (a Redis
Cluster's nodes, comma-separated); without them they are skipped."""

import asyncio
import os
import time
import unittest
import urllib.parse

import redis
from redis.cluster import ClusterNode, RedisCluster

from jobrunner_client import AsyncQueue, JobFailed, Queue, QueueEvents, WaitTimeout

URL = os.environ.get("JR_REDIS_URL")
NAME = os.environ.get("JR_QUEUE", "clients")
CLUSTER = os.environ.get("JR_CLUSTER")
NEEDS = "needs JR_REDIS_URL: run through tests/e2e/clients.rs, which starts Redis and runner serve"


@unittest.skipUnless(URL, NEEDS)
class AgainstTheRunner(unittest.TestCase):
    def setUp(self):
        self.redis = redis.Redis.from_url(URL)
        self.q = Queue(NAME, self.redis)

    def tearDown(self):
        self.q.close()
        self.redis.close()

    def test_a_job_runs_and_its_result_is_read_back(self):
        job = self.q.add("echo", {"hello": "runner"})
        self.assertTrue(job.created)
        self.assertEqual(self.q.wait_until_finished(job.id, timeout=30), {"hello": "runner"})
        done = self.q.get_job(job.id)
        self.assertEqual((done.state, done.returnvalue, done.attempts_made), ("completed", {"hello": "runner"}, 1))

    def test_a_failure_is_read_back_after_the_attempts_given(self):
        job = self.q.add("flaky", {"fail_percent": 100}, {"attempts": 2, "backoff": {"type": "fixed", "delay": 10}})
        with self.assertRaisesRegex(JobFailed, "flaky failure on attempt 2"):
            self.q.wait_until_finished(job.id, timeout=30)
        failed = self.q.get_job(job.id)
        self.assertEqual((failed.state, failed.attempts_made, len(failed.errors)), ("failed", 2, 2))
        self.assertEqual(failed.opts, {"attempts": 2, "backoff": {"type": "fixed", "delay_ms": 10}})

    def test_options_arrive_as_given(self):
        before = int(time.time() * 1000)
        job = self.q.add(
            "echo",
            {"n": 1},
            {"delay": 300, "priority": 7, "group": "vendor-1", "timeout": 5000, "removeOnFail": {"count": 9}},
        )
        self.assertEqual(job.state, "delayed")
        delayed = self.q.get_job(job.id)
        self.assertEqual(delayed.group, "vendor-1")
        self.assertGreaterEqual(delayed.delayed_until, before + 300)
        self.assertEqual(
            delayed.opts,
            {"delay_ms": 300, "priority": 7, "timeout_ms": 5000, "keep_failed": {"count": 9, "age_ms": None}, "group": "vendor-1"},
        )
        self.q.wait_until_finished(job.id, timeout=30)
        self.assertGreaterEqual(self.q.get_job(job.id).finished_on, before + 300)

    def test_an_id_of_yours_de_duplicates(self):
        first = self.q.add("echo", {"v": 1}, {"jobId": "py-order-42"})
        again = self.q.add("echo", {"v": 2}, {"jobId": "py-order-42"})
        self.assertEqual((first.created, again.created), (True, False))
        self.assertEqual(self.q.wait_until_finished("py-order-42", timeout=30), {"v": 1})

    def test_add_bulk_and_the_events_follow_every_job(self):
        events = QueueEvents(NAME, URL)
        jobs = self.q.add_bulk([{"name": "echo", "data": {"i": i}} for i in range(1000)])
        wanted = {j.id for j in jobs}
        self.assertEqual(len(wanted), 1000)
        deadline = time.monotonic() + 60
        while wanted and time.monotonic() < deadline:
            for name, fields, _ in events.read(block_ms=500):
                if name == "completed":
                    wanted.discard(fields["jobId"])
        events.close()
        self.assertEqual(len(wanted), 0, f"{len(wanted)} not completed")
        self.assertGreaterEqual(self.q.get_job_counts()["completed"], 1000)

    def test_a_wait_that_runs_out_says_where_the_job_stands(self):
        job = self.q.add("sleep", {"ms": 2000})
        with self.assertRaisesRegex(WaitTimeout, "still (waiting|active)"):
            self.q.wait_until_finished(job.id, timeout=0.2)

    def test_asyncio_adds_waits_and_reads_back(self):
        async def run():
            q = AsyncQueue(NAME, URL)
            try:
                job = await q.add("echo", {"from": "asyncio"}, {"attempts": 1})
                bulk = await q.add_bulk([{"name": "echo", "data": {"i": 1}}, {"name": "echo", "data": {"i": 2}}])
                self.assertEqual(await q.wait_until_finished(job.id, timeout=30), {"from": "asyncio"})
                results = await asyncio.gather(*(q.wait_until_finished(j.id, timeout=30) for j in bulk))
                self.assertEqual(results, [{"i": 1}, {"i": 2}])
                self.assertEqual((await q.get_job(job.id)).opts, {"attempts": 1})
                self.assertFalse((await q.get_job_counts())["paused"])
            finally:
                await q.close()

        asyncio.run(run())


@unittest.skipUnless(CLUSTER, "needs JR_CLUSTER")
class OnACluster(unittest.TestCase):
    def test_a_queue_lives_in_one_slot_and_reads_back(self):
        nodes = [urllib.parse.urlparse(u) for u in CLUSTER.split(",")]
        cluster = RedisCluster(startup_nodes=[ClusterNode(n.hostname, n.port) for n in nodes])
        q = Queue("py-cluster-emails", cluster)
        one = q.add("email", {"to": "ana@example.com"}, {"jobId": "c-1", "priority": 3})
        bulk = q.add_bulk([{"name": "email", "data": {"i": 1}}, {"name": "email", "data": {"i": 2}, "opts": {"delay": 60000}}])
        self.assertEqual([one.created] + [j.state for j in bulk], [True, "waiting", "delayed"])
        self.assertEqual(q.get_job("c-1").opts, {"priority": 3})
        self.assertEqual(
            q.get_job_counts(), {"waiting": 2, "delayed": 1, "active": 0, "completed": 0, "failed": 0, "waiting_children": 0, "paused": False}
        )
        cluster.close()


if __name__ == "__main__":
    unittest.main()
