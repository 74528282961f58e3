"""Tests for :mod:`encore.util.human_date`."""

from __future__ import annotations

import doctest
import logging
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from encore.util import human_date
from encore.util.human_date import convertToHumanReadable, makeEpochTime, makeFancyDatetime

NOW = datetime(2024, 5, 1, 12, 0, 0)
NOW_UTC = NOW.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(days=456), "1 year, 3 months ago."),
        (timedelta(days=365), "1 year ago."),
        (timedelta(days=730, hours=3), "2 years ago."),
        (timedelta(days=232), "7 months, 22 days ago."),
        (timedelta(days=65, hours=5), "2 months, 5 days ago."),
        (timedelta(days=30), "1 month ago."),
        (timedelta(days=23, hours=5, minutes=3), "23 days, 5 hours ago."),
        (timedelta(days=1, minutes=3), "1 day ago."),
        (timedelta(hours=12, minutes=30), "12 hours, 30 minutes ago."),
        (timedelta(hours=1), "1 hour ago."),
        (timedelta(hours=2, seconds=59), "2 hours ago."),
        (timedelta(minutes=1, seconds=30), "1 minute ago."),
        (timedelta(seconds=25.9), "25 seconds ago."),
        (timedelta(seconds=1), "1 second ago."),
        (timedelta(0), "0 seconds ago."),
        (timedelta(seconds=-100), "1 minute from now."),
        (timedelta(days=-3, hours=-2), "3 days, 2 hours from now."),
    ],
)
def test_descriptions(age, text):
    assert convertToHumanReadable(NOW - age, now=NOW) == text
    assert convertToHumanReadable(NOW_UTC - age, now=NOW_UTC) == text


def test_aware_datetimes_in_any_timezone():
    tokyo = timezone(timedelta(hours=9))
    dt = (NOW_UTC - timedelta(hours=3)).astimezone(tokyo)
    assert convertToHumanReadable(dt, now=NOW_UTC) == "3 hours ago."


def test_default_now_for_aware_and_naive():
    assert convertToHumanReadable(datetime.now(timezone.utc) - timedelta(days=2)) == "2 days ago."
    assert convertToHumanReadable(datetime.now() - timedelta(days=2)) == "2 days ago."
    naive_utc = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=2)
    assert convertToHumanReadable(naive_utc, utc=True) == "2 days ago."


def test_mixing_naive_and_aware_is_an_error():
    with pytest.raises(ValueError, match="naive"):
        convertToHumanReadable(NOW, now=NOW_UTC)
    with pytest.raises(ValueError, match="naive"):
        convertToHumanReadable(NOW_UTC, now=NOW)


@pytest.mark.parametrize("bad", ["2024-05-01", 1714564800, None])
def test_non_datetimes_are_rejected(bad):
    with pytest.raises(TypeError, match="datetime"):
        convertToHumanReadable(bad)
    with pytest.raises(TypeError, match="datetime"):
        makeEpochTime(bad)


def test_make_epoch_time_aware():
    assert makeEpochTime(datetime(1970, 1, 1, tzinfo=timezone.utc)) == 0
    assert makeEpochTime(datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=timezone.utc)) == 1714564800
    plus_two = timezone(timedelta(hours=2))
    assert makeEpochTime(datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)) == 1714564800


def test_make_epoch_time_naive_is_local_time():
    dt = datetime(2024, 5, 1, 12, 0, 0, 500000)
    assert makeEpochTime(dt) == int(time.mktime(dt.replace(microsecond=0).timetuple()))


def test_make_fancy_datetime():
    dt = datetime.now(timezone.utc) - timedelta(days=40)
    assert makeFancyDatetime(dt) == {
        "fancy_datetime": "1 month, 10 days ago.",
        "seconds_since_epoch": makeEpochTime(dt),
    }


def test_sample_logging(caplog):
    with caplog.at_level(logging.INFO, logger=human_date.__name__):
        human_date.test()
    assert len(caplog.records) == 5
    assert "1 year, 3 months ago." in caplog.records[0].getMessage()


def test_import_configures_no_logging():
    code = (
        "import logging, encore.util.human_date; "
        "root = logging.getLogger(); "
        "assert root.handlers == [], root.handlers; "
        "assert root.level == logging.WARNING, root.level"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_doctests():
    failures, tried = doctest.testmod(human_date)
    assert tried > 0
    assert failures == 0
