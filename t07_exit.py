"""Exit scenarios: mode=runner (open SyncRunner with pending writes from a thread), mode=db (async: Database never closed, GC'd), mode=dbexit (open db at exit inside asyncio.run end)."""
import sys, tempfile, threading, asyncio, gc, time
from pathlib import Path
from persistence import SyncRunner, TestResult, TestStatus, TestType, open_persistence, save_result, open_database, migrate, connect
mode = sys.argv[1]; url = sys.argv[2]
d = Path(sys.argv[3])
def r(i): return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"i": i})
if mode == "runner":
    runner = SyncRunner()
    p = runner.enter(open_persistence(url, files=d / "files"))
    for i in range(10): runner.call(save_result, p.db, r(i))
    def bg():
        for i in range(10, 100000): runner.call(save_result, p.db, r(i))
    threading.Thread(target=bg, daemon=True).start()
    time.sleep(0.5)
    print("exiting with open runner", flush=True)
elif mode == "db":
    async def main():
        db = await open_database(url); await migrate(db)
        for i in range(10): await save_result(db, r(i))
        # forget it
        del db; gc.collect()
        print("dropped db", flush=True)
    asyncio.run(main()); gc.collect()
    print("threads:", [t.name for t in threading.enumerate()], flush=True)
elif mode == "dbexit":
    async def main():
        global db
        db = await open_database(url); await migrate(db)
        for i in range(10): await save_result(db, r(i))
        tasks = [asyncio.create_task(save_result(db, r(i))) for i in range(10, 200)]
        await asyncio.sleep(0)
        print("leaving loop with writes pending", flush=True)
    asyncio.run(main())
    print("threads:", [t.name for t in threading.enumerate()], flush=True)
