"""POST /api/v1/schedules/validate computes next runs (SPEC §2).

Every expected value below was worked out by hand and cross-checked with
Python's zoneinfo (a wall time in a spring-forward gap maps, with fold=0, to
the same instant as "shifted forward by the gap"; fold=0 of a repeated wall
time is its first occurrence). The arithmetic is in the comments.
"""

import datetime
import unittest

import chronos_harness as h
from chronos_harness import assert_ok

VALIDATE = "/api/v1/schedules/validate"


@h.require_binary
class SchedulesValidateTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = h.Node()
        cls.addClassCleanup(cls.node.cleanup)
        cls.node.start_ready()

    def next_runs(self, schedule, frm=None, timezone=None, count=None):
        req = {"schedule": schedule}
        if timezone is not None:
            req["timezone"] = timezone
        if frm is not None:
            req["from"] = frm
        if count is not None:
            req["count"] = count
        data = assert_ok(self, self.node.api("POST", VALIDATE, req), 200,
                         "validate %r" % req)
        self.assertIs(data.get("valid"), True, data)
        return data["next_runs"]

    def check(self, schedule, frm, timezone, expected):
        got = self.next_runs(schedule, frm, timezone, count=len(expected))
        self.assertEqual(got, expected, "%s in %s from %s" % (schedule,
                                                              timezone, frm))

    # --- America/New_York ---------------------------------------------------
    def test_new_york_spring_forward_gap_time_shifts_by_gap(self):
        # 2024-03-10 02:00 EST -> 03:00 EDT. 02:30 does not exist: it runs at
        # 03:30 EDT (UTC-4) = 07:30Z. Later days 02:30 EDT = 06:30Z.
        self.check("30 2 * * *", "2024-03-09T12:00:00Z", "America/New_York",
                   ["2024-03-10T07:30:00Z", "2024-03-11T06:30:00Z",
                    "2024-03-12T06:30:00Z"])

    def test_new_york_wall_time_kept_across_spring_forward(self):
        # 01:00 EST (UTC-5) = 06:00Z on the 10th; 01:00 EDT (UTC-4) = 05:00Z.
        self.check("0 1 * * *", "2024-03-09T12:00:00Z", "America/New_York",
                   ["2024-03-10T06:00:00Z", "2024-03-11T05:00:00Z"])

    def test_new_york_fall_back_repeated_time_runs_once_at_first(self):
        # 2024-11-03 02:00 EDT -> 01:00 EST: 01:30 occurs at 05:30Z (EDT) and
        # 06:30Z (EST). Only the first; then 01:30 EST = 06:30Z daily.
        self.check("30 1 * * *", "2024-11-02T12:00:00Z", "America/New_York",
                   ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z",
                    "2024-11-05T06:30:00Z"])

    def test_new_york_fall_back_second_occurrence_is_skipped(self):
        # From inside the repeated hour (05:45Z = 01:45 EDT): the second 01:30
        # (06:30Z on the 3rd) must not run; next is the 4th 01:30 EST.
        self.check("30 1 * * *", "2024-11-03T05:45:00Z", "America/New_York",
                   ["2024-11-04T06:30:00Z"])

    def test_new_york_minute_step_follows_elapsed_time_in_fall_back(self):
        # */30 with hour '*' runs on real elapsed time: every 30 min through
        # the repeated hour (05:30Z=01:30 EDT, 06:00Z=01:00 EST, ...).
        self.check("*/30 * * * *", "2024-11-03T05:00:00Z", "America/New_York",
                   ["2024-11-03T05:30:00Z", "2024-11-03T06:00:00Z",
                    "2024-11-03T06:30:00Z", "2024-11-03T07:00:00Z",
                    "2024-11-03T07:30:00Z"])

    def test_new_york_minute_step_in_spring_forward(self):
        # 06:00Z = 01:00 EST. Elapsed half hours: 06:30Z (01:30 EST),
        # 07:00Z (03:00 EDT), 07:30Z (03:30 EDT).
        self.check("*/30 * * * *", "2024-03-10T06:00:00Z", "America/New_York",
                   ["2024-03-10T06:30:00Z", "2024-03-10T07:00:00Z",
                    "2024-03-10T07:30:00Z"])

    def test_daily_macro_in_new_york_across_spring_forward(self):
        # @daily = 00:00 local: 00:00 EST = 05:00Z, then 00:00 EDT = 04:00Z.
        self.check("@daily", "2024-03-09T12:00:00Z", "America/New_York",
                   ["2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z"])

    # --- Europe/London ------------------------------------------------------
    def test_london_spring_forward_gap_time_shifts_by_gap(self):
        # 2024-03-31 01:00 GMT -> 02:00 BST. 01:30 does not exist -> 02:30 BST
        # = 01:30Z. Next day 01:30 BST = 00:30Z.
        self.check("30 1 * * *", "2024-03-30T12:00:00Z", "Europe/London",
                   ["2024-03-31T01:30:00Z", "2024-04-01T00:30:00Z"])

    def test_london_fall_back_repeated_time_runs_once_at_first(self):
        # 2024-10-27 02:00 BST -> 01:00 GMT. 01:30 BST = 00:30Z (first);
        # 01:30 GMT = 01:30Z that day is skipped; 10-28 01:30 GMT = 01:30Z.
        self.check("30 1 * * *", "2024-10-26T12:00:00Z", "Europe/London",
                   ["2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"])

    # --- Australia/Lord_Howe (30-minute DST) -----------------------------------
    def test_lord_howe_half_hour_spring_forward_shifts_by_30_minutes(self):
        # 2024-10-06 02:00 LHST (+10:30) -> 02:30 LHDT (+11:00). 02:15 does
        # not exist -> 02:45 LHDT = 2024-10-05T15:45Z. Next day 02:15 LHDT
        # = 2024-10-06T15:15Z.
        self.check("15 2 * * *", "2024-10-05T00:00:00Z", "Australia/Lord_Howe",
                   ["2024-10-05T15:45:00Z", "2024-10-06T15:15:00Z"])

    def test_lord_howe_half_hour_fall_back_runs_once_at_first(self):
        # 2024-04-07 02:00 LHDT (+11) -> 01:30 LHST (+10:30): 01:45 occurs at
        # 14:45Z (LHDT) and 15:15Z (LHST) on the 6th UTC; only the first.
        # 04-08 01:45 LHST = 2024-04-07T15:15Z.
        self.check("45 1 * * *", "2024-04-06T00:00:00Z", "Australia/Lord_Howe",
                   ["2024-04-06T14:45:00Z", "2024-04-07T15:15:00Z"])

    # --- a zone without DST ---------------------------------------------------
    def test_tokyo_has_fixed_offset_and_runs_strictly_after_from(self):
        # 09:00 JST (+9) = 00:00Z. `from` is exactly 2024-03-09 09:00 JST, so
        # that run is excluded (strictly after).
        self.check("0 9 * * *", "2024-03-09T00:00:00Z", "Asia/Tokyo",
                   ["2024-03-10T00:00:00Z", "2024-03-11T00:00:00Z",
                    "2024-03-12T00:00:00Z"])

    def test_timezone_defaults_to_utc(self):
        got = self.next_runs("0 9 * * *", "2024-03-09T00:00:00Z", count=1)
        self.assertEqual(got, ["2024-03-09T09:00:00Z"])

    # --- calendar rules -------------------------------------------------------
    def test_leap_day_schedule_waits_for_next_leap_year(self):
        self.check("0 0 29 2 *", "2024-03-01T00:00:00Z", "UTC",
                   ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z",
                    "2036-02-29T00:00:00Z"])

    def test_day_of_month_or_day_of_week_vixie_rule(self):
        # 13th OR Friday: Fridays 6,13,20,27 Sep, 4,11 Oct, then Sun 13 Oct.
        self.check("0 0 13 * 5", "2024-09-01T00:00:00Z", "UTC",
                   ["2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z",
                    "2024-09-20T00:00:00Z", "2024-09-27T00:00:00Z",
                    "2024-10-04T00:00:00Z", "2024-10-11T00:00:00Z",
                    "2024-10-13T00:00:00Z"])

    def test_last_day_of_month(self):
        self.check("0 0 L * *", "2024-01-15T00:00:00Z", "UTC",
                   ["2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z",
                    "2024-03-31T00:00:00Z"])

    def test_nearest_weekday(self):
        # 2024-06-15 is a Saturday -> Friday 14th; 2024-07-15 is a Monday.
        self.check("0 0 15W * *", "2024-06-01T00:00:00Z", "UTC",
                   ["2024-06-14T00:00:00Z", "2024-07-15T00:00:00Z"])

    def test_nth_weekday_of_month(self):
        # Second Monday: Jan 8, Feb 12, Mar 11 2024.
        self.check("0 0 * * 1#2", "2024-01-01T00:00:00Z", "UTC",
                   ["2024-01-08T00:00:00Z", "2024-02-12T00:00:00Z",
                    "2024-03-11T00:00:00Z"])

    def test_day_of_week_7_is_sunday(self):
        # 2024-09-01 is a Sunday (excluded: strictly after).
        self.check("0 0 * * 7", "2024-09-01T00:00:00Z", "UTC",
                   ["2024-09-08T00:00:00Z", "2024-09-15T00:00:00Z"])

    def test_month_and_day_names(self):
        # Mondays in JAN or JUL from 2024-06-30: Jul 1, Jul 8.
        self.check("0 12 * JAN,JUL MON", "2024-06-30T00:00:00Z", "UTC",
                   ["2024-07-01T12:00:00Z", "2024-07-08T12:00:00Z"])

    def test_question_mark_day_of_month(self):
        # 2024-01-01 is a Monday (excluded).
        self.check("0 0 ? * MON", "2024-01-01T00:00:00Z", "UTC",
                   ["2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"])

    def test_range_with_step(self):
        self.check("10-30/10 * * * *", "2024-01-01T00:00:00Z", "UTC",
                   ["2024-01-01T00:10:00Z", "2024-01-01T00:20:00Z",
                    "2024-01-01T00:30:00Z", "2024-01-01T01:10:00Z"])

    def test_six_field_cron_has_seconds(self):
        self.check("*/15 * * * * *", "2024-01-01T00:00:00Z", "UTC",
                   ["2024-01-01T00:00:15Z", "2024-01-01T00:00:30Z",
                    "2024-01-01T00:00:45Z"])

    def test_hourly_macro(self):
        self.check("@hourly", "2024-01-01T00:30:00Z", "UTC",
                   ["2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"])

    # --- count and from -------------------------------------------------------
    def test_count_defaults_to_5(self):
        got = self.next_runs("0 0 * * *", "2024-01-01T00:00:00Z", "UTC")
        self.assertEqual(got, ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z",
                               "2024-01-04T00:00:00Z", "2024-01-05T00:00:00Z",
                               "2024-01-06T00:00:00Z"])

    def test_count_1_is_respected(self):
        self.assertEqual(
            self.next_runs("0 0 * * *", "2024-01-01T00:00:00Z", "UTC", 1),
            ["2024-01-02T00:00:00Z"])

    def test_count_100_is_respected(self):
        got = self.next_runs("* * * * *", "2024-01-01T00:00:00Z", "UTC", 100)
        self.assertEqual(len(got), 100)
        self.assertEqual(got[0], "2024-01-01T00:01:00Z")
        self.assertEqual(got[-1], "2024-01-01T01:40:00Z")
        self.assertEqual(got, sorted(set(got)))

    def test_runs_are_strictly_after_from(self):
        self.assertEqual(
            self.next_runs("* * * * *", "2024-01-01T00:00:00Z", "UTC", 2),
            ["2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"])

    def test_from_between_runs(self):
        self.assertEqual(
            self.next_runs("* * * * *", "2024-01-01T00:00:30Z", "UTC", 1),
            ["2024-01-01T00:01:00Z"])

    def test_from_with_numeric_offset(self):
        # 09:00+09:00 is 00:00Z, itself a run, so excluded.
        self.assertEqual(
            self.next_runs("0 0 * * *", "2024-01-01T09:00:00+09:00", "UTC", 1),
            ["2024-01-02T00:00:00Z"])

    def test_from_defaults_to_now(self):
        before = datetime.datetime.now(datetime.timezone.utc)
        got = self.next_runs("* * * * *")
        self.assertEqual(len(got), 5)
        first = datetime.datetime.fromisoformat(got[0].replace("Z", "+00:00"))
        self.assertGreater(first, before - datetime.timedelta(seconds=1))
        self.assertLessEqual(first, before + datetime.timedelta(minutes=2))
        for s in got:
            self.assertRegex(s, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


if __name__ == "__main__":
    unittest.main()
