"""What the client checks without a Redis: the scripts are the runner's own
bytes, the key layout is the runner's, and bad input is refused with a
clear error before anything reaches Redis."""

import pathlib
import re
import unittest

import redis

from jobrunner_client import MAX_BULK, InvalidJobError, Queue
from jobrunner_client.keys import NAMES, PUSH_NAMES

HERE = pathlib.Path(__file__).resolve().parent
RUNNER_LUA = HERE.parent.parent.parent / "crates" / "queue" / "src" / "lua"
PACKAGED = HERE.parent / "src" / "jobrunner_client" / "lua"


class Offline(unittest.TestCase):
    def test_the_packaged_scripts_are_the_same_bytes_as_the_runners(self):
        files = sorted(p.name for p in RUNNER_LUA.glob("*.lua"))
        self.assertIn("enqueue.lua", files)
        for name in files:
            self.assertEqual(
                (PACKAGED / name).read_bytes(),
                (RUNNER_LUA / name).read_bytes(),
                f"lua/{name} differs from the runner's: run python scripts/copy_lua.py",
            )

    def test_the_key_names_are_the_runners_in_its_order(self):
        keys_rs = (RUNNER_LUA.parent / "keys.rs").read_text()

        def listed(name):
            body = keys_rs[keys_rs.index(f"pub const {name}") :].split("];")[0]
            return tuple(re.findall(r'"([a-z_]+)"', body))

        self.assertEqual(NAMES, listed("NAMES"))
        self.assertEqual(PUSH_NAMES, listed("PUSH_NAMES"))

    def test_bad_input_is_refused_before_anything_reaches_redis(self):
        # A client of a port nothing listens on: any command would fail.
        q = Queue("emails", redis.Redis(port=1, socket_connect_timeout=0.2))
        cases = [
            ({"priority": 5000}, r"priority must be from 0 to 4000"),
            ({"attempts": 0}, r"attempts must be at least 1"),
            ({"delay": -1}, r"delay"),
            ({"jobId": "has space"}, r"job id `has space` contains ` `"),
            ({"backoff": {"type": "linear", "delay": 5}}, r"backoff.type `linear`"),
            ({"backoff": {"type": "exponential", "delay": 5, "jitter": 2}}, r"jitter"),
            ({"removeOnComplete": "yes"}, r"removeOnComplete"),
            ({"atempts": 3}, r"unknown option `atempts`"),
        ]
        for opts, words in cases:
            with self.assertRaisesRegex(InvalidJobError, words):
                q.add("email", {}, opts)
        with self.assertRaisesRegex(InvalidJobError, r"job type"):
            q.add("has space", {})
        with self.assertRaisesRegex(InvalidJobError, r"over the 1048576 byte limit"):
            q.add("email", "x" * (1 << 20))
        with self.assertRaisesRegex(InvalidJobError, r"not JSON"):
            q.add("email", {"when": object()})
        with self.assertRaisesRegex(InvalidJobError, r"job 1: priority"):
            q.add_bulk([{"name": "email", "data": {}}, {"name": "email", "data": {}, "opts": {"priority": -1}}])
        with self.assertRaisesRegex(InvalidJobError, r"at most 10000"):
            q.add_bulk([{"name": "email", "data": {}}] * (MAX_BULK + 1))
        with self.assertRaisesRegex(InvalidJobError, r"queue name"):
            Queue("bad name", redis.Redis(port=1))
        with self.assertRaisesRegex(InvalidJobError, r"prefix"):
            Queue("q", redis.Redis(port=1), prefix="a{b}")


if __name__ == "__main__":
    unittest.main()
