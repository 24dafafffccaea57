//! Tests of calendar periods: kinds, time zones, DST, anchors, labels, ranges.

use super::*;

use jiff::civil::date;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn spec(kind: PeriodKind, tz: &str) -> PeriodSpec {
    PeriodSpec::new(kind, tz, None).unwrap()
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

fn days(d: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * d)
}

/// Checks everything that must hold for the period `t` falls in, and returns it.
/// `max_shift` bounds how far the period's real length may differ from its calendar
/// length (the offset changes inside it).
fn check(spec: &PeriodSpec, t: Timestamp, max_shift: SignedDuration) -> Period {
    let p = spec.period_at(t);
    assert!(p.start() <= t && t < p.end(), "{t} not in {p} {p:?}");
    assert!(p.contains(t));
    assert!(!p.contains(p.end()));
    let next = spec.next(&p);
    let prev = spec.prev(&p);
    assert_eq!(next.start(), p.end(), "{p:?} -> {next:?}");
    assert_eq!(prev.end(), p.start(), "{prev:?} -> {p:?}");
    assert_eq!(spec.prev(&next), p);
    assert_eq!(spec.next(&prev), p);
    assert_eq!(spec.period_at(p.start()), p);
    assert_eq!(spec.period_at(p.end() - SignedDuration::from_nanos(1)), p);
    assert_eq!(spec.period_at(p.end()), next);
    assert_eq!(
        spec.period_at(p.start() - SignedDuration::from_nanos(1)),
        prev
    );
    assert!(prev < p && p < next);
    assert_eq!(p.kind(), spec.kind());

    // The first day is where the period starts locally (or, after a gap at midnight,
    // the day the gap ends on), and what the next period starts on in civil terms.
    let local_start = spec.time_zone().to_datetime(p.start());
    let midnight = p.first_day().to_datetime(Time::midnight());
    assert!(
        local_start >= midnight && local_start.duration_since(midnight) <= hours(2),
        "{p:?} starts at local {local_start}"
    );
    let calendar = next.first_day().duration_since(p.first_day());
    let (min_days, max_days) = match spec.kind() {
        PeriodKind::Day => (1, 2),
        PeriodKind::Week => (7, 7),
        PeriodKind::Month => (28, 31),
        PeriodKind::Year => (365, 366),
    };
    assert!(
        days(min_days) <= calendar && calendar <= days(max_days),
        "{p:?} -> {next:?}"
    );
    let shift = (p.length() - calendar).abs();
    assert!(shift <= max_shift, "{p:?}: length {}", p.length());
    assert!(p.length() > SignedDuration::ZERO);

    // Labels are distinct and round-trip through Display.
    assert_eq!(p.label(), p.to_string());
    assert_ne!(p.label(), next.label());
    p
}

#[test]
fn month_lengths() {
    let s = PeriodSpec::monthly_utc();
    let cases = [
        ("2026-01-15T12:00:00Z", "2026-01", 31),
        ("2026-02-15T12:00:00Z", "2026-02", 28),
        ("2028-02-15T12:00:00Z", "2028-02", 29),
        ("2100-02-15T12:00:00Z", "2100-02", 28),
        ("2000-02-15T12:00:00Z", "2000-02", 29),
        ("2026-04-15T12:00:00Z", "2026-04", 30),
        ("2026-12-15T12:00:00Z", "2026-12", 31),
    ];
    for (at, label, len) in cases {
        let p = check(&s, ts(at), SignedDuration::ZERO);
        assert_eq!(p.label(), label);
        assert_eq!(p.length(), days(len), "{label}");
    }
    let feb = s.period_at(ts("2028-02-29T23:59:59Z"));
    assert_eq!(feb.start(), ts("2028-02-01T00:00:00Z"));
    assert_eq!(feb.end(), ts("2028-03-01T00:00:00Z"));
}

#[test]
fn year_boundary_and_leap_years() {
    let s = PeriodSpec::monthly_utc();
    let dec = s.period_at(ts("2026-12-31T23:59:59.999999999Z"));
    assert_eq!(dec.label(), "2026-12");
    let jan = s.next(&dec);
    assert_eq!(jan.label(), "2027-01");
    assert_eq!(jan.start(), ts("2027-01-01T00:00:00Z"));
    assert_eq!(s.prev(&jan), dec);
    assert_eq!(dec.next(&s), jan);
    assert_eq!(jan.prev(&s), dec);

    let y = spec(PeriodKind::Year, "UTC");
    for (year, len) in [
        (2026, 365),
        (2028, 366),
        (2000, 366),
        (2100, 365),
        (1970, 365),
    ] {
        let p = check(
            &y,
            ts(&format!("{year}-06-01T00:00:00Z")),
            SignedDuration::ZERO,
        );
        assert_eq!(p.label(), year.to_string());
        assert_eq!(p.length(), days(len), "{year}");
        assert_eq!(p.first_day(), date(year, 1, 1));
    }

    let d = spec(PeriodKind::Day, "UTC");
    let leap_day = d.period_at(ts("2028-02-29T10:00:00Z"));
    assert_eq!(leap_day.label(), "2028-02-29");
    assert_eq!(d.next(&leap_day).label(), "2028-03-01");
    let no_leap = d.period_at(ts("2100-02-28T10:00:00Z"));
    assert_eq!(d.next(&no_leap).label(), "2100-03-01");
    let new_year = d.period_at(ts("2026-12-31T10:00:00Z"));
    assert_eq!(d.next(&new_year).label(), "2027-01-01");
}

#[test]
fn boundary_instant_belongs_to_the_new_period() {
    let s = spec(PeriodKind::Month, "Europe/Berlin");
    // 00:00 CET on 1 November 2026.
    let boundary = ts("2026-10-31T23:00:00Z");
    let nov = s.period_at(boundary);
    assert_eq!(nov.label(), "2026-11");
    assert_eq!(nov.start(), boundary);
    let oct = s.period_at(boundary - SignedDuration::from_nanos(1));
    assert_eq!(oct.label(), "2026-10");
    assert_eq!(oct.end(), boundary);
    assert!(!oct.contains(boundary));
    assert!(nov.contains(boundary));

    let nanos = boundary.as_nanosecond();
    assert_eq!(s.period_at_nanos(nanos).unwrap(), nov);
    assert_eq!(s.period_at_nanos(nanos - 1).unwrap(), oct);
}

#[test]
fn berlin_dst_months_and_days() {
    let s = spec(PeriodKind::Month, "Europe/Berlin");
    let march = check(&s, ts("2026-03-15T00:00:00Z"), hours(1));
    assert_eq!(march.start(), ts("2026-02-28T23:00:00Z"));
    assert_eq!(march.end(), ts("2026-03-31T22:00:00Z"));
    assert_eq!(march.length(), days(31) - hours(1));
    let october = check(&s, ts("2026-10-15T00:00:00Z"), hours(1));
    assert_eq!(october.start(), ts("2026-09-30T22:00:00Z"));
    assert_eq!(october.end(), ts("2026-10-31T23:00:00Z"));
    assert_eq!(october.length(), days(31) + hours(1));
    let june = check(&s, ts("2026-06-15T00:00:00Z"), hours(1));
    assert_eq!(june.length(), days(30));

    let d = spec(PeriodKind::Day, "Europe/Berlin");
    let spring = check(&d, ts("2026-03-29T12:00:00Z"), hours(1));
    assert_eq!(spring.label(), "2026-03-29");
    assert_eq!(spring.length(), hours(23));
    let autumn = check(&d, ts("2026-10-25T12:00:00Z"), hours(1));
    assert_eq!(autumn.label(), "2026-10-25");
    assert_eq!(autumn.length(), hours(25));
}

#[test]
fn midnight_dst_gap_starts_after_the_gap() {
    // Chile springs forward at 24:00 on the first Saturday of September (2026-09-05):
    // local midnight of 6 September does not exist, the day starts at 01:00 -03.
    let d = spec(PeriodKind::Day, "America/Santiago");
    let sunday = check(&d, ts("2026-09-06T12:00:00Z"), hours(1));
    assert_eq!(sunday.label(), "2026-09-06");
    assert_eq!(sunday.start(), ts("2026-09-06T04:00:00Z"));
    assert_eq!(
        d.time_zone().to_datetime(sunday.start()),
        date(2026, 9, 6).at(1, 0, 0, 0)
    );
    assert_eq!(sunday.length(), hours(23));
    let saturday = d.prev(&sunday);
    assert_eq!(saturday.length(), hours(24));
    assert_eq!(saturday.end(), sunday.start());
    let just_before = d.period_at(ts("2026-09-06T03:59:59.999999999Z"));
    assert_eq!(just_before, saturday);

    // Cuba springs forward 00:00 -> 01:00 and falls back 01:00 -> 00:00, so midnight
    // is skipped in March and happens twice in November: the first one counts.
    let d = spec(PeriodKind::Day, "America/Havana");
    let spring = check(&d, ts("2026-03-08T12:00:00Z"), hours(1));
    assert_eq!(spring.start(), ts("2026-03-08T05:00:00Z"));
    assert_eq!(spring.length(), hours(23));
    let autumn = check(&d, ts("2026-11-01T12:00:00Z"), hours(1));
    assert_eq!(autumn.label(), "2026-11-01");
    assert_eq!(autumn.start(), ts("2026-11-01T04:00:00Z"));
    assert_eq!(autumn.length(), hours(25));
    // The second 00:30 of 1 November belongs to that day too.
    assert_eq!(d.period_at(ts("2026-11-01T05:30:00Z")), autumn);

    // A monthly period starting on such a day starts after the gap as well.
    let m = spec(PeriodKind::Month, "America/Havana");
    let nov = check(&m, ts("2026-11-15T00:00:00Z"), hours(1));
    assert_eq!(nov.start(), ts("2026-11-01T04:00:00Z"));
}

#[test]
fn fall_back_across_midnight() {
    // St. John's fell back at 00:01 local from 1987 to 2010: 00:00:59 NDT was followed
    // by 23:01 NST of the previous day. Those repeated minutes of 6 November 2010
    // come after 7 November has started, so they belong to 7 November.
    let d = spec(PeriodKind::Day, "America/St_Johns");
    let seventh = check(&d, ts("2010-11-07T12:00:00Z"), hours(1));
    assert_eq!(seventh.start(), ts("2010-11-07T02:30:00Z")); // 00:00 NDT
    assert_eq!(seventh.length(), hours(25));
    let repeated = ts("2010-11-07T03:00:00Z");
    assert_eq!(
        d.time_zone().to_datetime(repeated),
        date(2010, 11, 6).at(23, 30, 0, 0)
    );
    assert_eq!(check(&d, repeated, hours(1)), seventh);
    let sixth = d.prev(&seventh);
    assert_eq!(sixth.label(), "2010-11-06");
    assert_eq!(sixth.length(), hours(24));
}

#[test]
fn gap_containing_midnight_starts_at_the_transition() {
    // Toronto, 1919-03-30: 23:30 EST jumped to 00:30 EDT. 31 March starts at the first
    // instant after the gap (00:30 EDT), not at 01:00 EDT where jiff's `compatible`
    // would put a nonexistent 00:00.
    let d = spec(PeriodKind::Day, "America/Toronto");
    let p = check(&d, ts("1919-03-31T12:00:00Z"), hours(1));
    assert_eq!(p.label(), "1919-03-31");
    assert_eq!(p.start(), ts("1919-03-31T04:30:00Z"));
    assert_eq!(
        d.prev(&p).length(),
        hours(23) + SignedDuration::from_mins(30)
    );
    let compatible = d
        .time_zone()
        .to_ambiguous_timestamp(date(1919, 3, 31).at(0, 0, 0, 0))
        .compatible()
        .unwrap();
    assert_eq!(compatible, ts("1919-03-31T05:00:00Z"));
}

#[test]
fn skipped_day_is_stepped_over() {
    // Samoa skipped 30 December 2011, going from -10 to +14.
    let d = spec(PeriodKind::Day, "Pacific/Apia");
    let before = d.period_at(ts("2011-12-30T09:59:59.999999999Z"));
    assert_eq!(before.label(), "2011-12-29");
    let after = d.next(&before);
    assert_eq!(after.label(), "2011-12-31");
    assert_eq!(after.start(), ts("2011-12-30T10:00:00Z"));
    assert_eq!(after.start(), before.end());
    assert_eq!(d.prev(&after), before);
    assert_eq!(d.period_at(ts("2011-12-30T10:00:00Z")), after);

    let w = spec(PeriodKind::Week, "Pacific/Apia");
    let week = w.period_at(ts("2011-12-30T12:00:00Z"));
    assert_eq!(week.label(), "2011-W52");
    assert_eq!(week.length(), days(6));
    let m = spec(PeriodKind::Month, "Pacific/Apia");
    assert_eq!(m.period_at(ts("2011-12-30T12:00:00Z")).length(), days(30));
    let y = spec(PeriodKind::Year, "Pacific/Apia");
    assert_eq!(y.period_at(ts("2011-12-30T12:00:00Z")).length(), days(364));

    // Every hour around the jump satisfies the invariants.
    let mut t = ts("2011-12-20T00:00:00Z");
    while t < ts("2012-01-10T00:00:00Z") {
        for s in [&d, &w, &m, &y] {
            check(s, t, hours(25));
        }
        t += hours(1);
    }
}

#[test]
fn company_time_zone_versus_utc() {
    let t = ts("2026-11-30T23:30:00Z");
    let utc = PeriodSpec::monthly_utc().period_at(t);
    assert_eq!(utc.label(), "2026-11");
    let tokyo = spec(PeriodKind::Month, "Asia/Tokyo").period_at(t);
    assert_eq!(tokyo.label(), "2026-12");
    assert_eq!(tokyo.start(), ts("2026-11-30T15:00:00Z"));
    assert_ne!(utc, tokyo);
    let la = spec(PeriodKind::Month, "America/Los_Angeles");
    let p = la.period_at(ts("2026-12-01T03:00:00Z"));
    assert_eq!(p.label(), "2026-11");
    assert_eq!(p.end(), ts("2026-12-01T08:00:00Z"));
    assert_eq!(p.length(), days(30) + hours(1)); // PDT -> PST on 1 November
    let kathmandu = spec(PeriodKind::Day, "Asia/Kathmandu").period_at(t);
    assert_eq!(kathmandu.label(), "2026-12-01");
    assert_eq!(kathmandu.start(), ts("2026-11-30T18:15:00Z"));
}

#[test]
fn anchored_months_clamp_without_drift() {
    let s = PeriodSpec::monthly_utc().with_anchor_day(31).unwrap();
    let p = check(&s, ts("2026-02-10T00:00:00Z"), SignedDuration::ZERO);
    assert_eq!(p.label(), "2026-01-31");
    assert_eq!(p.end(), ts("2026-02-28T00:00:00Z"));
    let mut p = s.period_at(ts("2026-01-31T00:00:00Z"));
    let mut starts = vec![p.first_day()];
    for _ in 0..13 {
        p = s.next(&p);
        starts.push(p.first_day());
    }
    let expected = [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
        date(2026, 6, 30),
        date(2026, 7, 31),
        date(2026, 8, 31),
        date(2026, 9, 30),
        date(2026, 10, 31),
        date(2026, 11, 30),
        date(2026, 12, 31),
        date(2027, 1, 31),
        date(2027, 2, 28),
    ];
    assert_eq!(starts, expected);
    // And back again.
    for want in expected.iter().rev().skip(1) {
        p = s.prev(&p);
        assert_eq!(p.first_day(), *want);
    }

    let s30 = PeriodSpec::new(PeriodKind::Month, "UTC", Some(30)).unwrap();
    let feb = check(&s30, ts("2026-03-01T00:00:00Z"), SignedDuration::ZERO);
    assert_eq!(feb.label(), "2026-02-28");
    assert_eq!(feb.end(), ts("2026-03-30T00:00:00Z"));
    assert_eq!(s30.prev(&feb).label(), "2026-01-30");
    assert_eq!(s30.prev(&feb).length(), days(29));

    let s29 = PeriodSpec::new(PeriodKind::Month, "UTC", Some(29)).unwrap();
    let leap = check(&s29, ts("2028-03-01T00:00:00Z"), SignedDuration::ZERO);
    assert_eq!(leap.label(), "2028-02-29");
    assert_eq!(leap.length(), days(29));
    let common = check(&s29, ts("2027-03-01T00:00:00Z"), SignedDuration::ZERO);
    assert_eq!(common.label(), "2027-02-28");
    assert_eq!(common.end(), ts("2027-03-29T00:00:00Z"));

    // An instant on the anchor day itself starts the new period; one just before
    // does not.
    let s15 = PeriodSpec::new(PeriodKind::Month, "Europe/Berlin", Some(15)).unwrap();
    let p = s15.period_at(ts("2026-11-14T23:00:00Z"));
    assert_eq!(p.label(), "2026-11-15");
    assert_eq!(p.start(), ts("2026-11-14T23:00:00Z"));
    assert_eq!(p.end(), ts("2026-12-14T23:00:00Z"));
    let before = s15.period_at(ts("2026-11-14T22:59:59.999999999Z"));
    assert_eq!(before.label(), "2026-10-15");
    assert_eq!(before.length(), days(31) + hours(1));
}

#[test]
fn anchor_day_validation() {
    for bad in [0, 32, 255] {
        assert_eq!(
            PeriodSpec::new(PeriodKind::Month, "UTC", Some(bad)),
            Err(PeriodError::AnchorDayOutOfRange {
                anchor_day: i64::from(bad)
            })
        );
        assert!(PeriodSpec::monthly_utc().with_anchor_day(bad).is_err());
    }
    for kind in [PeriodKind::Day, PeriodKind::Week, PeriodKind::Year] {
        assert_eq!(
            PeriodSpec::new(kind, "UTC", Some(5)),
            Err(PeriodError::AnchorDayNotMonthly {
                kind,
                anchor_day: 5
            })
        );
        assert_eq!(
            spec(kind, "UTC").with_anchor_day(5),
            Err(PeriodError::AnchorDayNotMonthly {
                kind,
                anchor_day: 5
            })
        );
    }
    let s = PeriodSpec::monthly_utc().with_anchor_day(1).unwrap();
    assert_eq!(s.anchor_day(), Some(1));
    // Anchor 1 gives calendar months, labelled by their first day.
    let p = s.period_at(ts("2026-11-20T00:00:00Z"));
    assert_eq!(p.label(), "2026-11-01");
    assert_eq!(p.start(), ts("2026-11-01T00:00:00Z"));
    assert_eq!(p.end(), ts("2026-12-01T00:00:00Z"));
}

#[test]
fn time_zone_names() {
    let err = PeriodSpec::new(PeriodKind::Month, "Mars/Olympus_Mons", None).unwrap_err();
    assert_eq!(
        err,
        PeriodError::UnknownTimeZone {
            name: "Mars/Olympus_Mons".into()
        }
    );
    assert!(err.to_string().contains("\"Mars/Olympus_Mons\""), "{err}");
    assert!(PeriodSpec::new(PeriodKind::Month, "", None).is_err());
    let s = PeriodSpec::new(PeriodKind::Month, "europe/berlin", None).unwrap();
    assert_eq!(s.time_zone_name(), "Europe/Berlin");
    assert_eq!(s, spec(PeriodKind::Month, "Europe/Berlin"));
    assert_eq!(s.to_string(), "month in Europe/Berlin");
    assert_eq!(PeriodSpec::default(), spec(PeriodKind::Month, "UTC"));
    assert_eq!(PeriodSpec::default().time_zone_name(), "UTC");
    assert_eq!(
        PeriodSpec::new(PeriodKind::Month, "UTC", Some(15))
            .unwrap()
            .to_string(),
        "month in UTC from day 15"
    );
    assert_ne!(
        spec(PeriodKind::Month, "UTC"),
        spec(PeriodKind::Month, "Etc/UTC")
    );
}

#[test]
fn iso_weeks_across_year_end() {
    let w = spec(PeriodKind::Week, "UTC");
    let cases = [
        // 2026 starts on a Thursday, so it has 53 ISO weeks.
        ("2026-12-31T12:00:00Z", "2026-W53", date(2026, 12, 28)),
        ("2027-01-03T23:59:59Z", "2026-W53", date(2026, 12, 28)),
        ("2027-01-04T00:00:00Z", "2027-W01", date(2027, 1, 4)),
        // 30 December 2024 (a Monday) starts week 1 of 2025.
        ("2024-12-30T00:00:00Z", "2025-W01", date(2024, 12, 30)),
        ("2024-12-29T23:59:59Z", "2024-W52", date(2024, 12, 23)),
        ("2021-01-01T00:00:00Z", "2020-W53", date(2020, 12, 28)),
        ("2026-11-22T12:00:00Z", "2026-W47", date(2026, 11, 16)),
    ];
    for (at, label, monday) in cases {
        let p = check(&w, ts(at), SignedDuration::ZERO);
        assert_eq!(p.label(), label, "{at}");
        assert_eq!(p.first_day(), monday, "{at}");
        assert_eq!(p.length(), days(7));
    }
    let w53 = w.period_at(ts("2026-12-31T12:00:00Z"));
    assert_eq!(w.next(&w53).label(), "2027-W01");
    // Berlin weeks start at local midnight on Monday and change length with DST.
    let wb = spec(PeriodKind::Week, "Europe/Berlin");
    let p = check(&wb, ts("2026-03-29T12:00:00Z"), hours(1));
    assert_eq!(p.start(), ts("2026-03-22T23:00:00Z"));
    assert_eq!(p.length(), days(7) - hours(1));
}

#[test]
fn labels() {
    let t = ts("2026-11-22T12:00:00Z");
    let cases = [
        (spec(PeriodKind::Day, "UTC"), "2026-11-22"),
        (spec(PeriodKind::Week, "UTC"), "2026-W47"),
        (spec(PeriodKind::Month, "UTC"), "2026-11"),
        (
            PeriodSpec::new(PeriodKind::Month, "UTC", Some(15)).unwrap(),
            "2026-11-15",
        ),
        (spec(PeriodKind::Year, "UTC"), "2026"),
    ];
    for (s, label) in cases {
        let p = s.period_at(t);
        assert_eq!(p.label(), label);
        assert_eq!(p.to_string(), label);
    }
    let early = spec(PeriodKind::Month, "UTC").period_at(ts("0042-03-04T00:00:00Z"));
    assert_eq!(early.label(), "0042-03");
    let bc = spec(PeriodKind::Year, "UTC").period_at(ts("-000044-03-15T00:00:00Z"));
    assert_eq!(bc.label(), "-000044");
    assert_eq!(PeriodKind::Week.to_string(), "week");
}

#[test]
fn out_of_range() {
    let s = PeriodSpec::monthly_utc();
    assert_eq!(
        s.period_at_nanos(i128::MAX),
        Err(PeriodError::TimestampOutOfRange {
            unix_nanos: i128::MAX
        })
    );
    assert!(s.period_at_nanos(i128::MIN).is_err());
    // The last and first months are cut by jiff's range.
    assert!(s.try_period_at(Timestamp::MAX).is_err());
    assert!(s.try_period_at(Timestamp::MIN).is_err());
    let last = s.period_at(ts("9999-11-15T00:00:00Z"));
    assert_eq!(last.label(), "9999-11");
    assert!(s.try_next(&last).is_err());
    let first = s.period_at(ts("-009999-02-15T00:00:00Z"));
    assert!(s.try_prev(&first).is_err());
    assert!(s
        .try_period_at(Timestamp::MAX)
        .unwrap_err()
        .to_string()
        .contains("outside the supported range"));
    // Every u64 engine timestamp is fine.
    let p = s.period_at_nanos(u64::MAX.into()).unwrap();
    assert_eq!(p.label(), "2554-07");
    let p = s.period_at_nanos(0).unwrap();
    assert_eq!(p.label(), "1970-01");
    let p = s.period_at_nanos(i64::MIN.into()).unwrap();
    assert_eq!(p.label(), "1677-09");
}

#[test]
fn error_messages() {
    let msgs = [
        PeriodError::AnchorDayOutOfRange { anchor_day: 32 }.to_string(),
        PeriodError::AnchorDayNotMonthly {
            kind: PeriodKind::Week,
            anchor_day: 3,
        }
        .to_string(),
    ];
    assert!(
        msgs[0].contains("32") && msgs[0].contains("1 to 31"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].contains("week") && msgs[1].contains("monthly"),
        "{}",
        msgs[1]
    );
    let boxed: Box<dyn std::error::Error> =
        Box::new(PeriodError::UnknownTimeZone { name: "X".into() });
    assert!(boxed.to_string().contains("unknown time zone"));
}

#[derive(Debug, Deserialize)]
struct Config {
    period: PeriodSpec,
}

fn from_toml(s: &str) -> Result<PeriodSpec, String> {
    toml::from_str::<Config>(s)
        .map(|c| c.period)
        .map_err(|e| e.to_string())
}

#[test]
fn serde_toml() {
    let s =
        from_toml(r#"period = { kind = "month", time_zone = "Europe/Berlin", anchor_day = 15 }"#)
            .unwrap();
    assert_eq!(
        s,
        PeriodSpec::new(PeriodKind::Month, "Europe/Berlin", Some(15)).unwrap()
    );
    let s = from_toml("[period]\nkind = \"week\"\n").unwrap();
    assert_eq!(s, spec(PeriodKind::Week, "UTC"));
    assert_eq!(s.anchor_day(), None);
    for kind in ["day", "week", "month", "year"] {
        let s = from_toml(&format!("period = {{ kind = \"{kind}\" }}")).unwrap();
        assert_eq!(s.kind().as_str(), kind);
    }

    let bad_zone = from_toml(r#"period = { kind = "month", time_zone = "Europe/Berlln" }"#);
    let msg = bad_zone.unwrap_err();
    assert!(msg.contains("unknown time zone \"Europe/Berlln\""), "{msg}");
    for anchor in ["0", "32", "-1", "300"] {
        let msg = from_toml(&format!(
            "period = {{ kind = \"month\", anchor_day = {anchor} }}"
        ))
        .unwrap_err();
        assert!(
            msg.contains(&format!("anchor day {anchor} is out of range")),
            "{msg}"
        );
    }
    let msg = from_toml(r#"period = { kind = "year", anchor_day = 3 }"#).unwrap_err();
    assert!(msg.contains("monthly periods only"), "{msg}");
    let msg = from_toml(r#"period = { kind = "month", timezone = "UTC" }"#).unwrap_err();
    assert!(msg.contains("unknown field"), "{msg}");
    let msg = from_toml(r#"period = { kind = "monthly" }"#).unwrap_err();
    assert!(msg.contains("unknown variant"), "{msg}");
    assert!(from_toml(r#"period = { time_zone = "UTC" }"#).is_err());
}

#[test]
fn serde_json() {
    let s: PeriodSpec =
        serde_json::from_str(r#"{"kind": "month", "time_zone": "Asia/Tokyo", "anchor_day": 31}"#)
            .unwrap();
    assert_eq!(s.time_zone_name(), "Asia/Tokyo");
    assert_eq!(s.anchor_day(), Some(31));
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"month","time_zone":"Asia/Tokyo","anchor_day":31}"#
    );
    let back: PeriodSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert_eq!(
        serde_json::to_string(&PeriodSpec::monthly_utc()).unwrap(),
        r#"{"kind":"month","time_zone":"UTC"}"#
    );
    let s: PeriodSpec = serde_json::from_str(r#"{"kind": "day"}"#).unwrap();
    assert_eq!(s, spec(PeriodKind::Day, "UTC"));

    let err = serde_json::from_str::<PeriodSpec>(r#"{"kind": "day", "time_zone": "Nowhere"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown time zone \"Nowhere\""), "{err}");
    let err = serde_json::from_str::<PeriodSpec>(r#"{"kind": "month", "anchor_day": 99}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("anchor day 99 is out of range"), "{err}");
    assert!(serde_json::from_str::<PeriodSpec>(r#"{"kind": "month", "extra": 1}"#).is_err());

    let p = PeriodSpec::monthly_utc().period_at(ts("2026-11-22T12:00:00Z"));
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        r#"{"label":"2026-11","start":"2026-11-01T00:00:00Z","end":"2026-12-01T00:00:00Z"}"#
    );
    let p = spec(PeriodKind::Month, "Europe/Berlin").period_at(ts("2026-11-22T12:00:00Z"));
    assert_eq!(
        serde_json::to_value(p).unwrap(),
        serde_json::json!({
            "label": "2026-11",
            "start": "2026-10-31T23:00:00Z",
            "end": "2026-11-30T23:00:00Z",
        })
    );
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "America/Havana",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "Europe/Moscow",
];

fn arb_spec() -> impl Strategy<Value = PeriodSpec> {
    let kind = prop_oneof![
        Just(PeriodKind::Day),
        Just(PeriodKind::Week),
        Just(PeriodKind::Month),
        Just(PeriodKind::Year),
    ];
    (kind, prop::sample::select(ZONES), 0u8..=31).prop_map(|(kind, zone, anchor)| {
        let anchor = (kind == PeriodKind::Month && anchor > 0).then_some(anchor);
        PeriodSpec::new(kind, zone, anchor).unwrap()
    })
}

proptest! {
    #[test]
    fn period_invariants(
        spec in arb_spec(),
        secs in ts("1970-01-01T00:00:00Z").as_second()..ts("2200-01-01T00:00:00Z").as_second(),
        nanos in 0i32..1_000_000_000,
    ) {
        let t = Timestamp::new(secs, nanos).unwrap();
        // No zone in the list changes its offset by more than two hours at once
        // (St. John's double daylight time in 1988) within 1970..2200.
        let p = check(&spec, t, hours(2));
        prop_assert_eq!(spec.period_at_nanos(t.as_nanosecond()).unwrap(), p);
    }
}
