"""Anomaly detectors: each flag fires on its pattern, says why with numbers, and not otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from audit.anomalies import (
    AnomalySettings,
    contested,
    denied_then_granted,
    detect_anomalies,
    off_hours,
    subject_bursts,
    unreviewed_break_glass,
    volume_outliers,
)
from tests.audit.events_factory import event, officer

# Tuesday 2026-12-01 10:00 in Shanghai (UTC+8) is 02:00 UTC.
WORKDAY = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SETTINGS = AnomalySettings()


def test_volume_outlier_by_robust_z_score() -> None:
    events = []
    for index, count in enumerate((4, 5, 5, 6, 5, 40)):
        who = officer(f"officer.education.sz{index}")
        events += [event(WORKDAY + timedelta(minutes=i), who=who, subject=f"ps1:s{i % 3}")
                   for i in range(count)]  # fmt: skip
    flags = volume_outliers(events, SETTINGS)
    assert [f.officer for f in flags] == [events[-1].officer.key]
    numbers = flags[0].numbers
    assert (numbers["requests"], numbers["median"], numbers["mad"]) == (40, 5, 0.5)
    assert numbers["robust_z"] == round(0.6745 * 35 / 0.5, 2)
    assert "made 40 access requests" in flags[0].message
    assert "median 5, MAD 0.5" in flags[0].message


def test_volume_needs_enough_peers_and_ignores_normal_spread() -> None:
    few = [event(WORKDAY, who=officer(f"o{i}")) for i in range(2)] * 3
    assert volume_outliers(few, SETTINGS) == []
    even = [event(WORKDAY + timedelta(seconds=i), who=officer(f"o{i % 4}")) for i in range(40)]
    assert volume_outliers(even, SETTINGS) == []


def test_off_hours_in_shanghai_time() -> None:
    night = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    saturday = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)  # Saturday 10:00
    events = [event(WORKDAY), event(night), event(saturday)]
    flags = off_hours(events, SETTINGS)
    assert len(flags) == 1
    assert flags[0].numbers == {"off_hours": 2, "requests": 3, "work_hours": "08:00-20:00"}
    assert "Tue 2026-12-01 23:30" in flags[0].message
    assert "Sat 2026-12-05 10:00" in flags[0].message
    relaxed = AnomalySettings(weekends_off_hours=False, work_start=time(7), work_end=time(23, 59))
    assert off_hours(events, relaxed) == []


def test_many_distinct_subjects_in_a_short_window() -> None:
    events = [event(WORKDAY + timedelta(minutes=2 * i), subject=f"ps1:s{i}") for i in range(25)]
    flags = subject_bursts(events, SETTINGS)
    assert len(flags) == 1
    assert flags[0].numbers == {"distinct_subjects": 21, "window_minutes": 60.0, "threshold": 20}
    slow = [event(WORKDAY + timedelta(minutes=10 * i), subject=f"ps1:s{i}") for i in range(25)]
    assert subject_bursts(slow, SETTINGS) == []


def test_denial_followed_by_grant_for_the_same_subject() -> None:
    denied = event(WORKDAY, decision="denied", purpose="criminal_investigation")
    granted = event(WORKDAY + timedelta(minutes=5), purpose="emergency_care", emergency=True)
    other = event(WORKDAY + timedelta(minutes=6), subject="ps1:other")
    flags = denied_then_granted([other, granted, denied], SETTINGS)
    assert len(flags) == 1
    assert flags[0].event_ids == (denied.event_id, granted.event_id)
    assert flags[0].numbers["minutes_between"] == 5.0
    assert "purpose emergency_care, break-glass" in flags[0].message
    assert denied_then_granted([granted, denied], SETTINGS) != []
    assert denied_then_granted([denied], SETTINGS) == []


def test_break_glass_review_deadline() -> None:
    now = WORKDAY + timedelta(days=10)
    open_glass = event(WORKDAY, emergency=True)
    closed_late = event(
        WORKDAY, emergency=True, subject="ps1:late",
        review={"required": True, "status": "closed", "reasons": ["review_required"],
                "contests": [], "outcomes": [{"outcome": "justified",
                                              "at": "2026-12-09T02:00:00.000000Z"}]},
    )  # fmt: skip
    on_time = event(
        WORKDAY, emergency=True, subject="ps1:ontime",
        review={"required": True, "status": "closed", "reasons": ["review_required"],
                "contests": [], "outcomes": [{"outcome": "justified",
                                              "at": "2026-12-02T02:00:00.000000Z"}]},
    )  # fmt: skip
    flags = unreviewed_break_glass([open_glass, closed_late, on_time], SETTINGS, now)
    assert [(f.event_ids[0], f.numbers["days"]) for f in flags] == [
        (open_glass.event_id, 10.0),
        (closed_late.event_id, 8.0),
    ]
    assert "still open after 10.0 days (limit 7 days)" in flags[0].message
    assert "reviewed after 8.0 days" in flags[1].message
    assert unreviewed_break_glass([open_glass], SETTINGS, WORKDAY + timedelta(days=3)) == []


def test_contested_accesses() -> None:
    quiet = event(WORKDAY)
    disputed = event(
        WORKDAY, subject="ps1:c",
        review={"required": False, "status": "closed", "reasons": ["contested"],
                "contests": [{"contest_id": "x", "at": "2026-12-01T03:00:00.000000Z"}],
                "outcomes": [{"outcome": "unjustified", "at": "2026-12-02T03:00:00.000000Z"}]},
    )  # fmt: skip
    flags = contested([quiet, disputed])
    assert len(flags) == 1
    assert flags[0].numbers == {"contests": 1, "status": "closed", "outcomes": ["unjustified"]}
    assert "outcomes unjustified" in flags[0].message


def test_detect_runs_every_detector() -> None:
    flags = detect_anomalies([event(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))], SETTINGS,
                             now=WORKDAY)  # fmt: skip
    assert [f.kind for f in flags] == ["off_hours"]
    assert flags[0].to_dict()["kind"] == "off_hours"
