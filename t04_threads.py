"""16 threads save results and read config through one SyncRunner; then close it while threads still run."""
import sys, tempfile, threading, time, collections, traceback
from pathlib import Path
from persistence import SyncRunner, TestResult, TestStatus, TestType, open_persistence, save_result, set_config, list_results, get_config_value
d = Path(tempfile.mkdtemp(dir="/tmp/h54e/w"))
url = sys.argv[1] if len(sys.argv) > 1 else str(d / "app.db")
redis = sys.argv[2] if len(sys.argv) > 2 else None
runner = SyncRunner()
p = runner.enter(open_persistence(url, files=d / "files", redis=redis))
runner.call(set_config, p.db, "runner", "workers", 4)
errors = collections.Counter(); samples = {}; ok = collections.Counter(); stop = threading.Event()
def work(i):
    n = 0
    while not stop.is_set():
        try:
            runner.call(save_result, p.db, TestResult(test_type=TestType.STRESS, status=TestStatus.PASSED, metadata={"t": i, "n": n}))
            v = runner.run(p.cache.get_config_value("runner", "workers", int))
            assert v in (4, 5), v
            if n % 10 == 0: runner.call(set_config, p.db, "runner", "workers", 4 + (n//10) % 2)
            ok[i] += 1; n += 1
        except BaseException as e:
            k = type(e).__name__ + ": " + str(e)[:150]
            errors[k] += 1; samples.setdefault(k, traceback.format_exc()[-600:])
            if "closed" in str(e) or "cancelled" in str(e): return
ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for t in ts: t.start()
time.sleep(4)
print("before close ok", sum(ok.values()), "errors", dict(errors), flush=True)
t0 = time.monotonic()
try: runner.close(timeout=10)
except BaseException as e: print("close raised", type(e).__name__, e)
print("close took %.2f" % (time.monotonic() - t0))
for t in ts: t.join(15)
print("alive threads", [t.name for t in ts if t.is_alive()])
print("ok", sum(ok.values()), "errors:"); [print(" ", c, k) for k, c in errors.items()]
for k, s in samples.items():
    if "closed" not in k and "cancelled" not in k: print(s)
import persistence, asyncio
async def count():
    from persistence import connect, all_results
    async with connect(url) as db: return len(await all_results(db))
print("rows after reopen", asyncio.run(count()), "expected >=", sum(ok.values()))
print("threads", [t.name for t in threading.enumerate()])
