"""Leaderboard data shipped with lesbench (method cards, paper-reported numbers, measured
results). Data only; the code that reads it is :mod:`lesbench.leaderboard`."""
