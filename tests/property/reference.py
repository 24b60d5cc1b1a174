"""A deliberately naive exchange: the oracle the engine is compared with.

Everything is a flat list scanned from scratch: no price levels, no
indexes, no journal. It is slow and obviously right, which is the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bourse.core.commands import (
    AddShares,
    CancelOrder,
    CreateAccount,
    CreateCommand,
    CreateRequest,
    PlaceOrder,
    QueryOrder,
    Request,
)
from bourse.core.errors import ErrorCode
from bourse.core.results import (
    AccountCreated,
    Canceled,
    Error,
    Execution,
    Opened,
    OrderState,
    Result,
    SharesCreated,
    Status,
)


@dataclass
class NaiveOrder:
    order_id: int
    account_id: str
    symbol: str
    amount: Decimal
    limit: Decimal
    open: Decimal
    canceled: Decimal = Decimal(0)
    canceled_at: int | None = None
    fills: list[Execution] = field(default_factory=list)

    def state(self) -> OrderState:
        return OrderState(
            self.order_id, self.open, self.canceled, self.canceled_at, tuple(self.fills)
        )


@dataclass
class NaiveExchange:
    balances: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    symbols: set[str] = field(default_factory=set)
    orders: list[NaiveOrder] = field(default_factory=list)

    def apply(self, request: Request, now: int) -> list[Result]:
        if isinstance(request, CreateRequest):
            return [self.create(command) for command in request.commands]
        results: list[Result] = []
        for command in request.commands:
            if request.account_id not in self.balances:
                results.append(Error(ErrorCode.ACCOUNT_NOT_FOUND, command.echo))
            elif isinstance(command, PlaceOrder):
                results.append(self.place(request.account_id, command, now))
            elif isinstance(command, QueryOrder):
                results.append(self.query(request.account_id, command))
            elif isinstance(command, CancelOrder):
                results.append(self.cancel(request.account_id, command, now))
            else:
                results.append(Error(command.code, command.echo))
        return results

    def create(self, command: CreateCommand) -> Result:
        if isinstance(command, CreateAccount):
            if command.account_id in self.balances:
                return Error(ErrorCode.ACCOUNT_EXISTS, command.echo)
            self.balances[command.account_id] = command.balance
            return AccountCreated(command.account_id)
        if isinstance(command, AddShares):
            self.symbols.add(command.symbol)
            if command.account_id not in self.balances:
                return Error(ErrorCode.ACCOUNT_NOT_FOUND, command.echo)
            key = (command.account_id, command.symbol)
            self.positions[key] = self.positions.get(key, Decimal(0)) + command.shares
            return SharesCreated(command.symbol, command.account_id)
        return Error(command.code, command.echo)

    def place(self, account_id: str, command: PlaceOrder, now: int) -> Result:
        if command.symbol not in self.symbols:
            return Error(ErrorCode.UNKNOWN_SYMBOL, command.echo)
        size = abs(command.amount)
        if command.amount > 0:
            cost = command.amount * command.limit
            if self.balances[account_id] < cost:
                return Error(ErrorCode.INSUFFICIENT_FUNDS, command.echo)
            self.balances[account_id] -= cost
        else:
            key = (account_id, command.symbol)
            if self.positions.get(key, Decimal(0)) < size:
                return Error(ErrorCode.INSUFFICIENT_SHARES, command.echo)
            self.positions[key] -= size
        new = NaiveOrder(
            len(self.orders) + 1, account_id, command.symbol, command.amount, command.limit, size
        )
        self.orders.append(new)
        while new.open:
            best = self.best_match(new)
            if best is None:
                break
            self.fill(new, best, now)
        return Opened(command.echo, new.order_id)

    def best_match(self, new: NaiveOrder) -> NaiveOrder | None:
        buying = new.amount > 0
        candidates = [
            o
            for o in self.orders
            if o.symbol == new.symbol
            and o.open
            and (o.amount > 0) != buying
            and (o.limit <= new.limit if buying else o.limit >= new.limit)
        ]
        if not candidates:
            return None
        if buying:
            return min(candidates, key=lambda o: (o.limit, o.order_id))
        return min(candidates, key=lambda o: (-o.limit, o.order_id))

    def fill(self, new: NaiveOrder, resting: NaiveOrder, now: int) -> None:
        shares = min(new.open, resting.open)
        price = resting.limit
        buy, sell = (new, resting) if new.amount > 0 else (resting, new)
        self.balances[sell.account_id] += shares * price
        key = (buy.account_id, buy.symbol)
        self.positions[key] = self.positions.get(key, Decimal(0)) + shares
        self.balances[buy.account_id] += shares * (buy.limit - price)
        for o in (buy, sell):
            o.open -= shares
            o.fills.append(Execution(shares, price, now))

    def find(self, account_id: str, order_id: int) -> NaiveOrder | None:
        for o in self.orders:
            if o.order_id == order_id and o.account_id == account_id:
                return o
        return None

    def query(self, account_id: str, command: QueryOrder) -> Result:
        found = self.find(account_id, command.order_id)
        if found is None:
            return Error(ErrorCode.ORDER_NOT_FOUND, command.echo)
        return Status(found.state())

    def cancel(self, account_id: str, command: CancelOrder, now: int) -> Result:
        found = self.find(account_id, command.order_id)
        if found is None:
            return Error(ErrorCode.ORDER_NOT_FOUND, command.echo)
        if not found.open:
            return Error(ErrorCode.NOTHING_TO_CANCEL, command.echo)
        if found.amount > 0:
            self.balances[account_id] += found.open * found.limit
        else:
            key = (account_id, found.symbol)
            self.positions[key] += found.open
        found.canceled, found.open, found.canceled_at = found.open, Decimal(0), now
        return Canceled(found.state())
