"""The matching engine: applies requests in order, one at a time.

It is the single writer of all exchange state. ``apply`` takes one parsed
request and the current time, and returns one result per command in
command order; every state change is noted in a journal, from which
``take_changes`` cuts the rows a batch must commit. No I/O, no clock: the
same requests at the same times always give the same results.

Matching is price-time priority at the resting order's price: an incoming
order trades against the best opposite level while it crosses, oldest
order first within a level, splitting orders as needed.
"""

from __future__ import annotations

from decimal import Decimal

from bourse.core.book import Book, Order, Side
from bourse.core.changes import (
    AccountRow,
    ChangeSet,
    ExecutionRow,
    Journal,
    OrderRow,
    PositionRow,
)
from bourse.core.commands import (
    AddShares,
    CancelOrder,
    CreateAccount,
    CreateCommand,
    CreateRequest,
    PlaceOrder,
    QueryOrder,
    Request,
    TransactionCommand,
)
from bourse.core.errors import ErrorCode
from bourse.core.ledger import Account, Ledger
from bourse.core.money import MONEY, ZERO
from bourse.core.results import (
    AccountCreated,
    Canceled,
    Error,
    Execution,
    Opened,
    Result,
    SharesCreated,
    Status,
)


class Engine:
    """All accounts, books and orders, changed only through ``apply``."""

    def __init__(self) -> None:
        self.journal = Journal()
        self.ledger = Ledger(self.journal)
        self.books: dict[str, Book] = {}
        self.orders: dict[int, Order] = {}
        self.next_order_id = 1
        self.cash_deposited = ZERO
        self.shares_created: dict[str, Decimal] = {}

    # requests

    def apply(self, request: Request, now: int) -> list[Result]:
        """Apply one request at time ``now``; one result per command, in order."""
        if isinstance(request, CreateRequest):
            return [self._create(command) for command in request.commands]
        account = self.ledger.accounts.get(request.account_id)
        if account is None:
            return [Error(ErrorCode.ACCOUNT_NOT_FOUND, c.echo) for c in request.commands]
        return [self._transact(account, command, now) for command in request.commands]

    def take_changes(self) -> ChangeSet:
        """Rows for everything changed since the last call, at their current
        values, each row once; the journal starts afresh."""
        journal = self.journal
        accounts = self.ledger.accounts
        orders = self.orders
        changes = ChangeSet(
            symbols=tuple(journal.symbols),
            accounts=tuple(
                AccountRow(account_id, accounts[account_id].balance)
                for account_id in sorted(journal.accounts)
            ),
            positions=tuple(
                PositionRow(account_id, symbol, accounts[account_id].positions[symbol])
                for account_id, symbol in sorted(journal.positions)
            ),
            orders=tuple(_order_row(orders[order_id]) for order_id in sorted(journal.orders)),
            executions=tuple(journal.executions),
        )
        journal.symbols.clear()
        journal.accounts.clear()
        journal.positions.clear()
        journal.orders.clear()
        journal.executions.clear()
        return changes

    # <create>

    def _create(self, command: CreateCommand) -> Result:
        if isinstance(command, CreateAccount):
            return self._create_account(command)
        if isinstance(command, AddShares):
            return self._add_shares(command)
        return Error(command.code, command.echo)

    def _create_account(self, command: CreateAccount) -> Result:
        if command.account_id in self.ledger.accounts:
            return Error(ErrorCode.ACCOUNT_EXISTS, command.echo)
        self.ledger.open_account(command.account_id, command.balance)
        self.cash_deposited = MONEY.add(self.cash_deposited, command.balance)
        return AccountCreated(command.account_id)

    def _add_shares(self, command: AddShares) -> Result:
        symbol = command.symbol
        if symbol not in self.books:
            self.books[symbol] = Book(symbol)
            self.shares_created[symbol] = ZERO
            self.journal.symbols.append(symbol)
        account = self.ledger.accounts.get(command.account_id)
        if account is None:
            return Error(ErrorCode.ACCOUNT_NOT_FOUND, command.echo)
        self.ledger.deposit_shares(account, symbol, command.shares)
        self.shares_created[symbol] = MONEY.add(self.shares_created[symbol], command.shares)
        return SharesCreated(symbol, command.account_id)

    # <transactions>

    def _transact(self, account: Account, command: TransactionCommand, now: int) -> Result:
        if isinstance(command, PlaceOrder):
            return self._place(account, command, now)
        if isinstance(command, QueryOrder):
            return self._query(account, command)
        if isinstance(command, CancelOrder):
            return self._cancel(account, command, now)
        return Error(command.code, command.echo)

    def _place(self, account: Account, command: PlaceOrder, now: int) -> Result:
        book = self.books.get(command.symbol)
        if book is None:
            return Error(ErrorCode.UNKNOWN_SYMBOL, command.echo)
        amount = command.amount
        if amount > 0:
            if not self.ledger.reserve_cash(account, MONEY.multiply(amount, command.limit)):
                return Error(ErrorCode.INSUFFICIENT_FUNDS, command.echo)
        elif not self.ledger.reserve_shares(account, command.symbol, amount.copy_negate()):
            return Error(ErrorCode.INSUFFICIENT_SHARES, command.echo)
        order = Order(
            self.next_order_id, account.account_id, command.symbol, amount, command.limit, now
        )
        self.next_order_id += 1
        self.orders[order.order_id] = order
        self.journal.orders.add(order.order_id)
        if order.is_buy:
            self._match(order, book.asks, now)
        else:
            self._match(order, book.bids, now)
        if order.open_shares:
            book.side_of(order).add(order)
        return Opened(command.echo, order.order_id)

    def _match(self, incoming: Order, opposite: Side, now: int) -> None:
        """Fill ``incoming`` against ``opposite`` while it crosses."""
        limit = incoming.limit
        buying = incoming.is_buy
        while incoming.open_shares:
            price = opposite.best_price()
            if price is None or (price > limit if buying else price < limit):
                return
            level = opposite.levels[price]
            while incoming.open_shares and level:
                resting = next(iter(level.values()))
                shares = min(incoming.open_shares, resting.open_shares)
                if buying:
                    self._fill(incoming, resting, shares, price, now)
                else:
                    self._fill(resting, incoming, shares, price, now)
                if not resting.open_shares:
                    level.popitem(last=False)
            if not level:
                opposite.drop_level(price)

    def _fill(self, buy: Order, sell: Order, shares: Decimal, price: Decimal, now: int) -> None:
        """Trade ``shares`` between ``buy`` and ``sell`` at ``price``."""
        self.ledger.settle_fill(buy, sell, shares, price)
        execution = Execution(shares, price, now)
        buy.open_shares = MONEY.subtract(buy.open_shares, shares)
        buy.executions.append(execution)
        sell.open_shares = MONEY.subtract(sell.open_shares, shares)
        sell.executions.append(execution)
        journal = self.journal
        journal.orders.add(buy.order_id)
        journal.orders.add(sell.order_id)
        journal.executions.append(ExecutionRow(buy.order_id, execution))
        journal.executions.append(ExecutionRow(sell.order_id, execution))

    def _own_order(self, account: Account, order_id: int) -> Order | None:
        """The order if it exists and belongs to ``account`` (else None:
        another account's order looks exactly like a missing one)."""
        order = self.orders.get(order_id)
        if order is None or order.account_id != account.account_id:
            return None
        return order

    def _query(self, account: Account, command: QueryOrder) -> Result:
        order = self._own_order(account, command.order_id)
        if order is None:
            return Error(ErrorCode.ORDER_NOT_FOUND, command.echo)
        return Status(order.state())

    def _cancel(self, account: Account, command: CancelOrder, now: int) -> Result:
        order = self._own_order(account, command.order_id)
        if order is None:
            return Error(ErrorCode.ORDER_NOT_FOUND, command.echo)
        open_shares = order.open_shares
        if not open_shares:
            return Error(ErrorCode.NOTHING_TO_CANCEL, command.echo)
        self.books[order.symbol].side_of(order).remove(order)
        self.ledger.release(order, open_shares)
        order.open_shares = ZERO
        order.canceled_shares = open_shares
        order.canceled_at = now
        self.journal.orders.add(order.order_id)
        return Canceled(order.state())


def _order_row(order: Order) -> OrderRow:
    return OrderRow(
        order_id=order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        amount=order.amount,
        limit_price=order.limit,
        open_shares=order.open_shares,
        canceled_shares=order.canceled_shares,
        canceled_at=order.canceled_at,
        created_at=order.created_at,
    )
