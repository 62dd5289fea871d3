"""A small Python soft IOC: a counter that counts SETPOINT up each second, and the setpoint.

berth runs it with the Python of an environment built from requirements.txt (plus softioc);
`berth attach` reaches the interactive Python shell below.
"""

import asyncio
import os

from softioc import asyncio_dispatcher, builder, softioc

dispatcher = asyncio_dispatcher.AsyncioDispatcher()
builder.SetDeviceName(os.environ.get("IOC_PREFIX", "BL01B-EA-PY-01"))
count = builder.aIn("COUNT", initial_value=0, PREC=1)
setpoint = builder.aOut("SETPOINT", initial_value=1.0, PREC=1, always_update=True)
builder.LoadDatabase()
softioc.iocInit(dispatcher)


async def tick() -> None:
    while True:
        count.set(count.get() + setpoint.get())
        await asyncio.sleep(1.0)


dispatcher(tick)
softioc.interactive_ioc(globals())
