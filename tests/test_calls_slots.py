"""The client's cap on calls in flight: more wait their turn in arrival order, none is lost."""

import asyncio

from calls.client import Slots


def test_calls_over_the_cap_wait_and_go_in_arrival_order():
    async def scenario():
        slots, order, running, most = Slots(2), [], 0, 0

        async def call(name):
            nonlocal running, most
            await slots.acquire()
            running += 1
            most = max(most, running)
            order.append(name)
            await asyncio.sleep(0.01)
            running -= 1
            slots.release()

        await asyncio.gather(*(call(i) for i in range(10)))
        return order, most

    order, most = asyncio.run(scenario())
    assert order == list(range(10)) and most == 2


def test_a_waiter_cancelled_in_line_gives_up_its_place_and_loses_no_slot():
    async def scenario():
        slots = Slots(1)
        await slots.acquire()
        waiting = asyncio.ensure_future(slots.acquire())
        behind = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.sleep(0)
        slots.release()  # goes to `behind`, not to the cancelled one
        await asyncio.wait_for(behind, 1)
        slots.release()
        await asyncio.wait_for(slots.acquire(), 1)  # and the slot is free again
        return waiting.cancelled()

    assert asyncio.run(scenario())
