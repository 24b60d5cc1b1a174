"""The exchange itself: matching, money, accounts and the results of commands.

Offers the exchange (``exchange.Exchange``), the command and result dataclasses
every other package passes around (``commands``, ``results``, ``errors``),
exact decimal money (``money``), the ledger and order books, the journal of
changes a batch commits (``changes``), rebuilding from stored rows
(``restore``) and the invariants' audit. No I/O and no clock.

May import: nothing but the standard library. Every other package builds on
this one, so it depends on none of them.
"""
