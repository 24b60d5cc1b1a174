"""The exchange: applies requests in order, one at a time, and matches orders.

It is the single writer of all exchange state. ``apply`` takes one parsed
request and the current time, and returns one result per command in
command order; every state change is noted in a journal, from which
``take_changes`` cuts the rows a batch must commit. No I/O, no clock: the
same requests at the same times always give the same results.

Matching is price-time priority at the resting order's price: an incoming
order trades against the best opposite level while it crosses, oldest
order first within a level, splitting orders as needed.

Placing orders is the hot path. ``_place`` looks at the best opposite
price before calling the matcher at all; the matcher settles each resting
order inline as it fills, and the incoming order once, from its totals.
All sums are exact (``MONEY``), so settling totals gives the very numbers,
value and exponent, that settling fill by fill would.

The public market data is derived at the cut (``market_data.py``) from
what the batch journaled anyway (its new orders, its execution rows) and
two notes: each accepted order and each cancel notes its symbol, each
cancel itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from bourse.core.book import Book, Order, Side
from bourse.core.changes import (
    AccountRow,
    ChangeSet,
    DepositRow,
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
    PlaceOrder,
    QueryOrder,
    Request,
    TransactionCommand,
    TransactionsRequest,
)
from bourse.core.errors import ErrorCode
from bourse.core.ledger import Account, Ledger
from bourse.core.lookup import stored_lookup
from bourse.core.market import MarketSnapshot, Standing
from bourse.core.market_data import cut_market, standings
from bourse.core.mirror import MarketMirror
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


class Exchange:
    """All accounts, books and orders, changed only through ``apply``."""

    def __init__(
        self, max_open_orders: int | None = None, max_reply_fills: int | None = None
    ) -> None:
        #: Open orders one account may have at once (None: no cap).
        self.max_open_orders = max_open_orders
        #: Fills one request's queries and cancels may report (None: no cap).
        self.max_reply_fills = max_reply_fills
        self.journal = Journal()
        self.ledger = Ledger(self.journal)
        self.books: dict[str, Book] = {}
        #: Open orders, and closed ones not yet ``evict``-ed; a query of any
        #: other order it issued is answered from the stored orders.
        self.orders: dict[int, Order] = {}
        self.next_order_id = 1
        self.cash_deposited = ZERO
        self.shares_created: dict[str, Decimal] = {}
        #: The market as published: each symbol's levels, recent trades and
        #: ``seq``, as of the last cut.
        self.market = MarketMirror()
        #: The first order id opened since the last cut.
        self.first_uncut_order_id = 1

    def never_reissue_below(self, order_id: int) -> None:
        """Hand out no order id below ``order_id`` from now on: ids that a
        history this exchange was not rebuilt from (batches the database
        lost) gave to orders that clients were told about."""
        if order_id > self.next_order_id:
            self.next_order_id = self.first_uncut_order_id = order_id

    # requests

    def apply(self, request: Request, now: int) -> list[Result]:
        """Apply one request at time ``now``; one result per command, in order."""
        if isinstance(request, TransactionsRequest):
            commands = request.commands
            account = self.ledger.accounts.get(request.account_id)
            if account is None:
                return [Error(ErrorCode.ACCOUNT_NOT_FOUND, c.echo) for c in commands]
            if len(commands) == 1:  # the usual request: a comprehension costs more
                return [self._transact(account, commands[0], now)]
            return self._transact_within_budget(account, commands, now)
        return [self._create(command, now) for command in request.commands]

    def take_changes(self) -> ChangeSet:
        """Rows for everything changed since the last call, at their current
        values, each row once, and what that changed in the market (each
        touched symbol's messages numbered on from its last ``seq``); the
        journal starts afresh."""
        journal = self.journal
        accounts = self.ledger.accounts
        orders = self.orders
        market, sequences = cut_market(
            journal, orders, range(self.first_uncut_order_id, self.next_order_id), self.market
        )
        self.first_uncut_order_id = self.next_order_id
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
            deposits=tuple(journal.deposits),
            sequences=sequences,
            market=market,
        )
        journal.clear()
        return changes

    def market_snapshot(self) -> MarketSnapshot:
        """Every symbol's levels, recent trades and ``seq`` as of the last
        cut: what the updates cut so far add up to."""
        return self.market.snapshot()

    def standings(self) -> tuple[Standing, ...]:
        """Every account's cash and value, highest value first (see
        ``Standing``); prices are the last trades as of the last cut."""
        return standings(self.ledger.accounts, self.books, self.market)

    # <create>

    def _create(self, command: CreateCommand, now: int) -> Result:
        if isinstance(command, CreateAccount):
            return self._create_account(command, now)
        if isinstance(command, AddShares):
            return self._add_shares(command, now)
        return Error(command.code, command.echo)

    def _create_account(self, command: CreateAccount, now: int) -> Result:
        if command.account_id in self.ledger.accounts:
            return Error(ErrorCode.ACCOUNT_EXISTS, command.echo)
        self.ledger.open_account(command.account_id, command.balance)
        self.cash_deposited = MONEY.add(self.cash_deposited, command.balance)
        self.journal.deposits.append(DepositRow(command.account_id, None, command.balance, now))
        return AccountCreated(command.account_id)

    def _add_shares(self, command: AddShares, now: int) -> Result:
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
        self.journal.deposits.append(DepositRow(command.account_id, symbol, command.shares, now))
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

    def _transact_within_budget(
        self, account: Account, commands: tuple[TransactionCommand, ...], now: int
    ) -> list[Result]:
        """Several commands of one request, reporting at most
        ``max_reply_fills`` fills in all.

        A query or cancel that would take the request past the budget gets
        an error in its place (a cancel is then not carried out), unless it
        is the first to report any fills: every order can always be queried
        and canceled, alone or first in its request, and what one request
        makes the server render is bounded by the budget plus one order's
        history (which the exchange already holds).
        """
        transact = self._transact
        budget = self.max_reply_fills
        if budget is None:
            return [transact(account, command, now) for command in commands]
        results: list[Result] = []
        reported = 0
        for command in commands:
            if type(command) is not PlaceOrder:
                fills = self._fills_to_report(account, command)
                if reported and reported + fills > budget:
                    results.append(Error(ErrorCode.REPLY_TOO_LARGE, command.echo))
                    continue
                reported += fills
            results.append(transact(account, command, now))
        return results

    def _fills_to_report(self, account: Account, command: TransactionCommand) -> int:
        """How many ``<executed>`` the reply to ``command`` will hold."""
        if not isinstance(command, QueryOrder | CancelOrder):
            return 0
        order = self._own_order(account, command.order_id)
        if order is None or (isinstance(command, CancelOrder) and not order.open_shares):
            return 0
        return len(order.executions)

    def _place(self, account: Account, command: PlaceOrder, now: int) -> Result:
        book = self.books.get(command.symbol)
        if book is None:
            return Error(ErrorCode.UNKNOWN_SYMBOL, command.echo)
        symbol = book.symbol  # the book's own string: identical keys compare fastest
        cap = self.max_open_orders
        if cap is not None and account.open_orders >= cap:
            return Error(ErrorCode.TOO_MANY_OPEN_ORDERS, command.echo)
        amount = command.amount
        limit = command.limit
        if amount > ZERO:
            if not self.ledger.reserve_cash(account, MONEY.multiply(amount, limit)):
                return Error(ErrorCode.INSUFFICIENT_FUNDS, command.echo)
        elif not self.ledger.reserve_shares(account, symbol, amount.copy_negate()):
            return Error(ErrorCode.INSUFFICIENT_SHARES, command.echo)
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        order = Order(order_id, account.account_id, symbol, amount, limit, now)
        self.orders[order_id] = order
        journal = self.journal
        journal.orders.add(order_id)
        journal.sequences.add(symbol)
        if order.is_buy:
            asks = book.asks
            if asks.keys and asks.keys[asks.best_index] <= limit:
                self._match(order, account, asks, now)
            if order.open_shares:
                book.bids.add(order)
                account.open_orders += 1
        else:
            bids = book.bids
            if bids.keys and bids.keys[bids.best_index] >= limit:
                self._match(order, account, bids, now)
            if order.open_shares:
                book.asks.add(order)
                account.open_orders += 1
        return Opened(command.echo, order_id)

    def _match(self, order: Order, account: Account, opposite: Side, now: int) -> None:
        """Fill the incoming ``order`` of ``account`` from ``opposite``, best
        level first, while the level's price crosses the order's limit.

        Resting orders settle fill by fill (in ``_fill_from_level``). The
        incoming order settles once, from per-level sums: a buy gets its
        shares and back the part of its hold above each level's price, a
        sell is paid.
        """
        buying = order.is_buy
        limit = order.limit
        remaining = order.open_shares
        traded = cash = ZERO  # shares traded; a buy's refund or a sell's proceeds
        prices = opposite.keys
        best = opposite.best_index
        while prices:
            price = prices[best]
            if price > limit if buying else price < limit:
                break
            remaining, filled = self._fill_from_level(order, remaining, opposite, price, now)
            traded = MONEY.add(traded, filled)
            if not buying:
                cash = MONEY.add(cash, MONEY.multiply(filled, price))
            elif price != limit:
                cash = MONEY.add(cash, MONEY.multiply(filled, MONEY.subtract(limit, price)))
            if not remaining:
                break
        order.open_shares = remaining
        if buying:
            self.ledger.settle_purchase(account, order.symbol, traded, cash)
        else:
            self.ledger.settle_sale(account, cash)

    def _fill_from_level(
        self, order: Order, remaining: Decimal, side: Side, price: Decimal, now: int
    ) -> tuple[Decimal, Decimal]:
        """Fill up to ``remaining`` shares of the incoming ``order`` from the level
        at ``price``, oldest first, settling each resting order and its account
        as it fills (a resting buy held cash at this very price: no refund);
        the shares still wanted and the shares filled."""
        buying = order.is_buy
        symbol = order.symbol
        order_id = order.order_id
        accounts = self.ledger.accounts
        journal = self.journal
        add, subtract, multiply = MONEY.add, MONEY.subtract, MONEY.multiply  # used per fill
        level = side.levels[price]
        filled, used_up = ZERO, 0
        for resting in level.values():
            available = resting.open_shares
            shares = available if available < remaining else remaining
            execution = Execution(shares, price, now)
            counterparty = accounts[resting.account_id]
            if buying:
                counterparty.balance = add(counterparty.balance, multiply(shares, price))
                journal.accounts.add(resting.account_id)
                journal.executions.append(ExecutionRow(order_id, execution))
                journal.executions.append(ExecutionRow(resting.order_id, execution))
            else:
                positions = counterparty.positions
                positions[symbol] = add(positions.get(symbol, ZERO), shares)
                journal.positions.add((resting.account_id, symbol))
                journal.executions.append(ExecutionRow(resting.order_id, execution))
                journal.executions.append(ExecutionRow(order_id, execution))
            resting.open_shares = subtract(available, shares)
            resting.executions.append(execution)
            order.executions.append(execution)
            journal.orders.add(resting.order_id)
            filled = add(filled, shares)
            remaining = subtract(remaining, shares)
            if resting.open_shares:
                break
            counterparty.open_orders -= 1
            used_up += 1
            if not remaining:
                break
        if used_up == len(level):
            side.drop_best_level()
        else:
            for _ in range(used_up):
                level.popitem(last=False)
        return remaining, filled

    def _own_order(self, account: Account, order_id: int) -> Order | None:
        """The order if it exists and belongs to ``account`` (else None:
        another account's order looks exactly like a missing one)."""
        order = self.orders.get(order_id)
        if order is None or order.account_id != account.account_id:
            return None
        return order

    def _not_held(self, account: Account, command: QueryOrder | CancelOrder) -> Result:
        """The answer about an order not in memory: one this exchange issued
        is looked up in the stored orders (``lookup.py``), any other id does
        not exist."""
        if self.orders.get(command.order_id) is None and self.issued(command.order_id):
            return stored_lookup(account.account_id, command)
        return Error(ErrorCode.ORDER_NOT_FOUND, command.echo)

    def issued(self, order_id: int) -> bool:
        """True if ``order_id`` was handed out (or skipped) by this exchange."""
        return 0 < order_id < self.next_order_id

    def evict(self, order_ids: Iterable[int]) -> None:
        """Forget the closed orders among ``order_ids``: their last change is
        in the tables, where queries of them are answered from now on."""
        orders = self.orders
        for order_id in order_ids:
            order = orders.get(order_id)
            if order is not None and not order.open_shares:
                del orders[order_id]

    def _query(self, account: Account, command: QueryOrder) -> Result:
        order = self._own_order(account, command.order_id)
        if order is None:
            return self._not_held(account, command)
        return Status(order.state())

    def _cancel(self, account: Account, command: CancelOrder, now: int) -> Result:
        order = self._own_order(account, command.order_id)
        if order is None:
            return self._not_held(account, command)
        open_shares = order.open_shares
        if not open_shares:
            return Error(ErrorCode.NOTHING_TO_CANCEL, command.echo)
        self.books[order.symbol].side_of(order).remove(order)
        self.ledger.release(order, open_shares)
        account.open_orders -= 1
        order.open_shares = ZERO
        order.canceled_shares = open_shares
        order.canceled_at = now
        journal = self.journal
        journal.orders.add(order.order_id)
        journal.sequences.add(order.symbol)
        journal.cancels.append((self.next_order_id, order, now))
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
