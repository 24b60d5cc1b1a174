"""Accounts and the three money movements: reserve, settle, release.

Hold-then-settle accounting: an order takes what it may spend when it
opens (cash for a buy, shares for a sell), a fill settles from those holds,
and a cancel releases what the open part still holds. Balances and
positions therefore never go negative, and cash and shares are conserved
by construction: every function here moves value, none creates it except
the explicit deposits.

One movement lives elsewhere for speed: the resting side of each fill
(the resting seller's cash, the resting buyer's shares) is settled inline
by the exchange's matching loop, the hottest code of the exchange. The
incoming order settles here, once per match, from its totals.
"""

from __future__ import annotations

from decimal import Decimal

from bourse.core.book import Order
from bourse.core.changes import Journal
from bourse.core.money import MONEY, ZERO


class Account:
    """Free cash and free shares per symbol (what open orders hold is not
    here), and how many of the account's orders are open."""

    __slots__ = ("account_id", "balance", "open_orders", "positions")

    def __init__(self, account_id: str, balance: Decimal) -> None:
        self.account_id = account_id
        self.balance = balance
        self.positions: dict[str, Decimal] = {}
        self.open_orders = 0


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

    def settle_purchase(
        self, buyer: Account, symbol: str, shares: Decimal, refund: Decimal
    ) -> None:
        """An incoming buy's fills: the buyer gets ``shares`` and back
        ``refund``, the part of its hold above the prices it traded at."""
        self._add_shares(buyer, symbol, shares)
        if refund:
            self._add_cash(buyer, refund)

    def settle_sale(self, seller: Account, cash: Decimal) -> None:
        """An incoming sell's fills: the seller is paid ``cash``."""
        self._add_cash(seller, cash)

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
