"""Accounts and the three money movements: reserve, settle, release.

Hold-then-settle accounting: an order takes what it may spend when it
opens (cash for a buy, shares for a sell), a fill settles from those holds,
and a cancel releases what the open part still holds. Balances and
positions therefore never go negative, and cash and shares are conserved
by construction: every function here moves value, none creates it except
the explicit deposits.
"""

from __future__ import annotations

from decimal import Decimal

from bourse.core.book import Order
from bourse.core.changes import Journal
from bourse.core.money import MONEY, ZERO


class Account:
    """Free cash and free shares per symbol (what open orders hold is not here)."""

    __slots__ = ("account_id", "balance", "positions")

    def __init__(self, account_id: str, balance: Decimal) -> None:
        self.account_id = account_id
        self.balance = balance
        self.positions: dict[str, Decimal] = {}


class Ledger:
    """All accounts, and every change to them noted in the journal."""

    __slots__ = ("accounts", "journal")

    def __init__(self, journal: Journal) -> None:
        self.accounts: dict[str, Account] = {}
        self.journal = journal

    def open_account(self, account_id: str, balance: Decimal) -> Account:
        """A new account holding ``balance``."""
        account = Account(account_id, balance)
        self.accounts[account_id] = account
        self.journal.accounts.add(account_id)
        return account

    def deposit_shares(self, account: Account, symbol: str, shares: Decimal) -> None:
        """Add newly created shares to a position."""
        self._add_shares(account, symbol, shares)

    def reserve_cash(self, account: Account, cost: Decimal) -> bool:
        """Hold ``cost`` for a buy; False (and nothing held) when short."""
        if account.balance < cost:
            return False
        account.balance = MONEY.subtract(account.balance, cost)
        self.journal.accounts.add(account.account_id)
        return True

    def reserve_shares(self, account: Account, symbol: str, shares: Decimal) -> bool:
        """Hold ``shares`` for a sell; False (and nothing held) when short."""
        held = account.positions.get(symbol, ZERO)
        if held < shares:
            return False
        account.positions[symbol] = MONEY.subtract(held, shares)
        self.journal.positions.add((account.account_id, symbol))
        return True

    def settle_fill(self, buy: Order, sell: Order, shares: Decimal, price: Decimal) -> None:
        """One fill: the seller is paid ``shares × price``, the buyer gets the
        shares and back the part of its hold above the execution price."""
        cash = MONEY.multiply(shares, price)
        seller = self.accounts[sell.account_id]
        seller.balance = MONEY.add(seller.balance, cash)
        buyer = self.accounts[buy.account_id]
        symbol = buy.symbol
        buyer.positions[symbol] = MONEY.add(buyer.positions.get(symbol, ZERO), shares)
        if buy.limit != price:
            refund = MONEY.multiply(shares, MONEY.subtract(buy.limit, price))
            buyer.balance = MONEY.add(buyer.balance, refund)
            self.journal.accounts.add(buyer.account_id)
        self.journal.accounts.add(seller.account_id)
        self.journal.positions.add((buyer.account_id, symbol))

    def release(self, order: Order, open_shares: Decimal) -> None:
        """Give back what the open part of a canceled order held."""
        account = self.accounts[order.account_id]
        if order.is_buy:
            self._add_cash(account, MONEY.multiply(open_shares, order.limit))
        else:
            self._add_shares(account, order.symbol, open_shares)

    def _add_cash(self, account: Account, cash: Decimal) -> None:
        account.balance = MONEY.add(account.balance, cash)
        self.journal.accounts.add(account.account_id)

    def _add_shares(self, account: Account, symbol: str, shares: Decimal) -> None:
        account.positions[symbol] = MONEY.add(account.positions.get(symbol, ZERO), shares)
        self.journal.positions.add((account.account_id, symbol))
