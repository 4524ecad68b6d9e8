"""The report wing: comparing runs without a tracker's website.

`runs` reads run and sweep directories (and an Optuna search's study), `tables` makes the table
of what varies, seeds folded (`seed_statistics`: means, confidence intervals, Welch's test),
`figures` draws report.png, `html` writes report.html (page.js draws it in the browser),
`search` draws an Optuna search's history and importances, `compare` sets two configurations
side by side, and `command` is `seglab report` and `seglab compare`.

May import: the ground on top, the config, checks and run wings (an Optuna study is read the way
the search wrote it). Not `zoo/` or `data/`.
"""
