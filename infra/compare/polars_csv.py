"""The custom-costs CSV read by polars, for comparison with `cargo bench -p shared --bench csv_ingest`.

Writes the bench's 100 MB file (the same rows, to /tmp/costs-100.csv, once),
then reads it three times with polars plus the checks the service makes that
polars can express as column expressions (strict dates, decimal amounts,
three-capital currency codes, category length), and prints MB/s. Run it
under `/usr/bin/time -v` for its peak memory. Needs `pip install polars`.
"""
import os
import time

import polars as pl

PATH = "/tmp/costs-100.csv"
CATEGORIES = ["shipping", "agency fees", "tools", "cogs adjustment", "payment fees"]

if not os.path.exists(PATH):
    with open(PATH, "w") as f:
        f.write("date,category,description,amount,currency,sku,channel,recurrence\n")
        written, n = 0, 0
        while written < 100 * 1024 * 1024:
            line = (
                f"2026-{n % 12 + 1:02}-{n % 28 + 1:02},{CATEGORIES[n % 5]},"
                f"Cost line number {n} with a description,{n % 10000}.{n % 100:02},"
                f"EUR,SKU-{n % 1000000:06},online,one_off\n"
            )
            f.write(line)
            written += len(line)
            n += 1

size = os.path.getsize(PATH)
for _ in range(3):
    started = time.perf_counter()
    frame = pl.read_csv(PATH, schema_overrides={"amount": pl.Utf8})
    valid = frame.select(
        pl.col("date").str.strptime(pl.Date, "%Y-%m-%d", strict=False).is_not_null()
        & pl.col("amount").str.contains(r"^-?\d+(\.\d{1,4})?$")
        & pl.col("currency").str.contains(r"^[A-Z]{3}$")
        & (pl.col("category").str.len_chars() <= 64)
    ).sum()
    elapsed = time.perf_counter() - started
    print(f"polars {pl.__version__}: read and checks {size / 1e6 / elapsed:.0f} MB/s ({len(frame)} rows)")
