import sys, asyncio
from persistence import connect, all_results
async def m():
    async with connect(sys.argv[1]) as db: return len(await all_results(db))
print("rows:", asyncio.run(m()))
