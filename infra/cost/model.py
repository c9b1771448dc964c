#!/usr/bin/env python3
"""The monthly AWS cost of the connections service per N connections
(default 1,000), from what each piece of work costs in requests, writes and
compute. The counts below are this design's (a sync run's writes, the
sweep's reads); change them when the design changes, and the numbers follow.

Prices: AWS list prices, us-east-1, on-demand, without free tiers, as of
2026 (check https://aws.amazon.com/pricing for yours).

Usage: model.py [--connections N] [--interval-minutes M] [--pages P]
"""

import argparse

PRICE = {
    "secret_month": 0.40,            # Secrets Manager, per secret per month
    "secret_10k_calls": 0.05,        # per 10,000 API calls
    "ddb_million_writes": 1.25,      # DynamoDB on-demand, per million write request units
    "ddb_million_reads": 0.25,       # per million read request units
    "ddb_gb_month": 0.25,            # storage
    "lambda_gb_second": 0.0000133334,  # arm64
    "lambda_million_requests": 0.20,
    "sqs_million_requests": 0.40,
    "s3_thousand_puts": 0.005,
    "s3_gb_month": 0.023,
    "ses_thousand_emails": 0.10,
    "events_million": 1.00,          # EventBridge custom events
    "http_api_million": 1.00,        # API Gateway HTTP API requests
}

# This design's work, per unit (see the README's Design and Syncing).
SECRETS_PER_CONNECTION = 0.8         # grants are shared by connections of one account
ITEM_WRITE_UNITS = 3                 # a connection item is ~2-3 KB (cursors, status)
WRITES_PER_RUN = 4                   # lease, running, cursor per page (added below), finished
READS_PER_RUN = 3                    # connection, authorization, lease check
SECRET_READS_PER_RUN = 1.2           # the grant's tokens (and sometimes the app's)
SQS_REQUESTS_PER_RUN = 3             # send, receive, delete
EVENTS_PER_RUN = 1                   # sync.completed
RUN_SECONDS_PER_PAGE = 0.4           # a page's request and write, 512 MB worker
SYNC_WORKER_GB = 0.5
BYTES_PER_PAGE = 150_000             # JSON Lines of a page of ~100 records
SWEEP_RUNS_PER_MONTH = 30 * 24 * 12  # rate(5 minutes)
SWEEP_SECONDS, SWEEP_GB = 0.3, 0.25
SWEEP_READS_PER_RUN_PER_1000 = 4     # the due index only, a few items per 1,000 connections
REFRESHES_PER_CONNECTION = 30        # hourly tokens refreshed ahead of use: about daily per grant in practice
EMAILS_PER_CONNECTION = 0.5          # alerts and digests a month
API_REQUESTS_PER_CONNECTION = 200    # the frontend's reads a month
ITEM_KB_PER_CONNECTION = 6           # connection, runs kept 30 days, alerts


def model(connections, interval_minutes, pages):
    runs = connections * 30 * 24 * 60 / interval_minutes
    lines = []

    def add(what, dollars, basis):
        lines.append((what, dollars, basis))

    secrets = connections * SECRETS_PER_CONNECTION
    secret_calls = runs * SECRET_READS_PER_RUN + connections * REFRESHES_PER_CONNECTION * 2
    add("Secrets Manager", secrets * PRICE["secret_month"] + secret_calls / 10_000 * PRICE["secret_10k_calls"],
        f"{secrets:,.0f} secrets, {secret_calls:,.0f} calls")
    writes = runs * (WRITES_PER_RUN + pages) * ITEM_WRITE_UNITS
    reads = runs * READS_PER_RUN + SWEEP_RUNS_PER_MONTH * SWEEP_READS_PER_RUN_PER_1000 * connections / 1000
    storage_gb = connections * ITEM_KB_PER_CONNECTION / 1_000_000
    add("DynamoDB", writes / 1e6 * PRICE["ddb_million_writes"] + reads / 1e6 * PRICE["ddb_million_reads"]
        + storage_gb * PRICE["ddb_gb_month"], f"{writes / 1e6:,.1f} M write units, {reads / 1e6:,.1f} M read units")
    gb_seconds = runs * pages * RUN_SECONDS_PER_PAGE * SYNC_WORKER_GB + SWEEP_RUNS_PER_MONTH * SWEEP_SECONDS * SWEEP_GB
    invocations = runs + SWEEP_RUNS_PER_MONTH + connections * (API_REQUESTS_PER_CONNECTION + EMAILS_PER_CONNECTION)
    add("Lambda", gb_seconds * PRICE["lambda_gb_second"] + invocations / 1e6 * PRICE["lambda_million_requests"],
        f"{gb_seconds:,.0f} GB-s, {invocations / 1e6:,.2f} M invocations")
    add("SQS", runs * SQS_REQUESTS_PER_RUN / 1e6 * PRICE["sqs_million_requests"], f"{runs * SQS_REQUESTS_PER_RUN / 1e6:,.2f} M requests")
    puts = runs * pages
    new_gb = puts * BYTES_PER_PAGE / 1e9
    add("S3", puts / 1000 * PRICE["s3_thousand_puts"] + new_gb * PRICE["s3_gb_month"],
        f"{puts / 1e6:,.2f} M puts, {new_gb:,.1f} GB new a month (storage grows by it)")
    add("SES", connections * EMAILS_PER_CONNECTION / 1000 * PRICE["ses_thousand_emails"], f"{connections * EMAILS_PER_CONNECTION:,.0f} emails")
    add("EventBridge", runs * EVENTS_PER_RUN / 1e6 * PRICE["events_million"], f"{runs * EVENTS_PER_RUN / 1e6:,.2f} M events")
    add("API Gateway", connections * API_REQUESTS_PER_CONNECTION / 1e6 * PRICE["http_api_million"],
        f"{connections * API_REQUESTS_PER_CONNECTION / 1e6:,.2f} M requests")
    return runs, lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--interval-minutes", type=float, default=60, help="each connection syncs this often")
    parser.add_argument("--pages", type=float, default=2, help="pages a run reads")
    args = parser.parse_args()
    runs, lines = model(args.connections, args.interval_minutes, args.pages)
    print(f"{args.connections:,} connections, a sync every {args.interval_minutes:g} min, {args.pages:g} pages a run: {runs:,.0f} runs a month")
    total = 0.0
    for what, dollars, basis in lines:
        total += dollars
        print(f"  {what:<16} ${dollars:>9,.2f}   {basis}")
    print(f"  {'total':<16} ${total:>9,.2f}   (${total / args.connections:,.4f} a connection)")


if __name__ == "__main__":
    main()
