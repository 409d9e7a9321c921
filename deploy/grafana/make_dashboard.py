#!/usr/bin/env python3
"""Writes deploy/grafana/outpost.json, the Outpost Grafana dashboard.

The dashboard is generated so every panel has the same shape and the metric names live in one
list here; edit this file and run it (`python3 deploy/grafana/make_dashboard.py`), never the
JSON by hand; `--check` fails when the JSON is not current. tests/tests/deploy.rs checks that the JSON is current, well-formed, and that
every metric a query uses is exported by a running edge or origin.
"""
import json
import pathlib
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"

# (row title, [(panel title, unit, [(legend, expr)])])
ROWS = [
    ("Edge", [
        ("Requests/s by cache status", "reqps", [
            ("{{cache}}", f"sum by (cache) (rate(outpost_edge_requests_total[{RATE}]))"),
        ]),
        ("Hit ratio", "percentunit", [
            ("hits / cacheable", f'sum(rate(outpost_edge_requests_total{{cache=~"HIT|STALE|REVALIDATED"}}[{RATE}])) / sum(rate(outpost_edge_requests_total{{cache=~"HIT|STALE|REVALIDATED|MISS|EXPIRED"}}[{RATE}]))'),
            ("fast-path share of hits", f'sum(rate(outpost_edge_hot_hits_total[{RATE}])) / sum(rate(outpost_edge_requests_total{{cache="HIT"}}[{RATE}]))'),
        ]),
        ("Responses/s by status class", "reqps", [
            ("{{status}}", f"sum by (status) (rate(outpost_edge_requests_total[{RATE}]))"),
        ]),
        ("Bytes out/s (billed egress)", "Bps", [
            ("{{account}}", f"sum by (account) (rate(outpost_edge_account_egress_bytes_total[{RATE}]))"),
        ]),
        ("Latency p50 / p99", "s", [
            ("p50", f"histogram_quantile(0.5, sum by (le) (rate(outpost_edge_request_seconds_bucket[{RATE}])))"),
            ("p99", f"histogram_quantile(0.99, sum by (le) (rate(outpost_edge_request_seconds_bucket[{RATE}])))"),
        ]),
        ("Purge lag (feed changes behind, per edge)", "short", [
            ("{{edge}}", "max by (edge) (outpost_origin_feed_edge_lag)"),
        ]),
        ("Change apply time p99", "s", [
            ("p99", f"histogram_quantile(0.99, sum by (le) (rate(outpost_edge_change_apply_seconds_bucket[{RATE}])))"),
        ]),
        ("Purged entries/s by cause", "ops", [
            ("{{cause}}", f"sum by (cause) (rate(outpost_edge_purged_total[{RATE}]))"),
        ]),
        ("Denials/s by reason", "reqps", [
            ("{{reason}}", f"sum by (reason) (rate(outpost_edge_denials_total[{RATE}]))"),
        ]),
        ("Cache tiers in use", "bytes", [
            ("memory {{instance}}", "outpost_edge_cache_memory_bytes"),
            ("disk {{instance}}", "outpost_edge_cache_disk_bytes"),
        ]),
        ("Access logs and billing", "short", [
            ("log lines dropped/s", f"sum(rate(outpost_edge_access_log_dropped_total[{RATE}]))"),
            ("log ship errors/s", f"sum(rate(outpost_edge_log_ship_errors_total[{RATE}]))"),
            ("billing records pending", "sum(outpost_edge_billing_pending_records)"),
        ]),
    ]),
    ("Origin", [
        ("Requests/s by method", "reqps", [
            ("{{method}}", f"sum by (method) (rate(outpost_origin_requests_total[{RATE}]))"),
        ]),
        ("Errors/s (5xx) by status", "reqps", [
            ("{{status}}", f'sum by (status) (rate(outpost_origin_requests_total{{status=~"5.."}}[{RATE}]))'),
        ]),
        ("Latency p99 by method", "s", [
            ("{{method}}", f"histogram_quantile(0.99, sum by (le, method) (rate(outpost_origin_request_seconds_bucket[{RATE}])))"),
        ]),
        ("Bytes out/s by method", "Bps", [
            ("{{method}}", f"sum by (method) (rate(outpost_origin_response_bytes_total[{RATE}]))"),
        ]),
        ("Replication: seconds since last pass", "s", [
            ("{{instance}}", "outpost_cluster_replication_lag_seconds"),
        ]),
        ("Replication: pushes and errors/s", "ops", [
            ("pushed {{instance}}", f"rate(outpost_cluster_replication_pushed_total[{RATE}])"),
            ("errors {{instance}}", f"rate(outpost_cluster_replication_errors_total[{RATE}])"),
        ]),
        ("Cross-DC lag", "s", [
            ("{{peer}} {{instance}}", "outpost_xdc_lag_seconds"),
        ]),
        ("Cross-DC backlog (changes)", "short", [
            ("{{peer}} {{instance}}", "outpost_xdc_lag_entries"),
        ]),
        ("Auditor findings", "short", [
            ("quarantined {{instance}}", f"increase(outpost_cluster_quarantined_total[1h])"),
            ("handoff partitions {{instance}}", "outpost_cluster_handoff_partitions"),
        ]),
        ("Data disk free", "percentunit", [
            ("{{instance}}", "outpost_origin_disk_avail_bytes / outpost_origin_disk_size_bytes"),
        ]),
    ]),
]


def panel(pid, title, unit, targets, x, y):
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
             "legendFormat": legend}
            for i, (legend, expr) in enumerate(targets)
        ],
    }


def dashboard():
    panels, pid, y = [], 1, 0
    for title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, (ptitle, unit, targets) in enumerate(row):
            panels.append(panel(pid, ptitle, unit, targets, (i % 3) * 8, y + (i // 3) * 8))
            pid += 1
        y += ((len(row) + 2) // 3) * 8
    return {
        "uid": "outpost-overview",
        "title": "Outpost CDN",
        "tags": ["outpost"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "type": "datasource", "query": "prometheus",
            "label": "Prometheus", "current": {}, "hide": 0,
        }]},
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    out = pathlib.Path(__file__).with_name("outpost.json")
    text = json.dumps(dashboard(), indent=2) + "\n"
    if sys.argv[1:] == ["--check"]:
        if out.read_text() != text:
            sys.exit(f"{out} is not what {__file__} makes: run it and commit the result")
    else:
        out.write_text(text)
        print(out)
