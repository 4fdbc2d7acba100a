"""Copies the runner's queue scripts (crates/queue/src/lua/) into the
package (src/jobrunner_client/lua/): the client runs the very scripts the
runner runs, and tests/test_offline.py checks they are the same bytes.
Run before building or testing the package."""
import pathlib
import shutil

here = pathlib.Path(__file__).resolve().parent
source = here.parent.parent.parent / "crates" / "queue" / "src" / "lua"
target = here.parent / "src" / "jobrunner_client" / "lua"
target.mkdir(parents=True, exist_ok=True)
for f in source.glob("*.lua"):
    shutil.copyfile(f, target / f.name)
