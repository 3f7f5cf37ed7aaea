"""Market data kept on disk: Alpaca's minute-bar history downloaded into a folder of monthly
Parquet files (`<out>/<SYMBOL>/<YYYY-MM>.parquet`), and the loading of such a folder.

layout.py  the folder layout, New York months, what each file says it covers
download.py  `ict-trader data download`: paged, resumable, validated, with backoff
folder.py  a downloaded folder as one symbol's validated bars (for backtest and signals)
"""
