//! The state's rules, without a file or a network: which record goes next, where usage rolls, how a
//! record is dated, and how a refused tag set is narrowed down.

use super::*;

const NOW: u64 = 1_800_001_800; // half past an hour

fn none(_: &str, _: u64) -> bool {
    false
}

#[test]
fn closed_hours_go_first_and_the_open_hour_waits_unless_closing() {
    let mut s = State::default();
    s.add("r", hour_of(NOW), "", 5);
    s.add("r", hour_of(NOW) - HOUR, "", 3);
    s.add("r", hour_of(NOW) - HOUR, "team=a", 4);
    let b = s.next_record(NOW, false, &none).expect("closed hour");
    assert_eq!((b.hour, b.total()), (hour_of(NOW) - HOUR, 7));
    s.accepted(Some("id".into()));
    assert!(s.next_record(NOW, false, &none).is_none());
    assert_eq!(s.next_record(NOW, true, &none).map(|b| b.total()), Some(5));
}

#[test]
fn usage_for_a_sent_or_too_old_hour_rolls_into_the_next_sendable_hour() {
    let mut s = State::default();
    let h = hour_of(NOW) - 2 * HOUR;
    s.sent.push(Sent { dimension: "r".into(), hour: h, quantity: 1, record_id: None });
    s.add("r", h, "", 2);
    s.add("r", hour_of(NOW) - 9 * HOUR, "", 3);
    let b = s.next_record(NOW, false, &none).expect("rolled");
    // The 9-hours-old usage goes to the oldest sendable hour (5 h back), then 2 h back is taken.
    assert_eq!((b.hour, b.total()), (hour_of(NOW) - 5 * HOUR, 3));
    s.accepted(None);
    let b = s.next_record(NOW, false, &none).expect("rolled");
    assert_eq!((b.hour, b.total()), (h + HOUR, 2));
}

#[test]
fn more_than_one_record_rolls_the_rest_forward() {
    let mut s = State::default();
    let h = hour_of(NOW) - 3 * HOUR;
    s.add("r", h, "", MAX_QUANTITY);
    s.add("r", h, "team=a", 10);
    let b = s.next_record(NOW, false, &none).expect("first");
    assert_eq!(b.total(), MAX_QUANTITY);
    s.accepted(None);
    let b = s.next_record(NOW, false, &none).expect("rest");
    assert_eq!((b.hour, b.total()), (h + HOUR, 10));
}

#[test]
fn a_duplicate_rolls_forward_and_marks_the_hour() {
    let mut s = State::default();
    let h = hour_of(NOW) - HOUR;
    s.add("r", h, "", 4);
    s.next_record(NOW, true, &none);
    s.roll_in_flight(NOW, true);
    assert!(s.taken("r", h));
    let b = s.next_record(NOW, true, &none).expect("rolled");
    assert_eq!((b.hour, b.total()), (hour_of(NOW), 4));
}

/// A record is dated at the first usage of its hour, never before it; usage rolled into a later
/// hour at that hour's start; and the date survives state.json, so a restart re-sends it as it was.
#[test]
fn a_record_is_dated_at_the_first_usage_of_its_hour() {
    let mut s = State::default();
    let h = hour_of(NOW) - HOUR;
    s.add("r", h + 1700, "", 1);
    s.add("r", h + 1200, "team=a", 1);
    s.add("r", h + 3000, "", 1);
    let b = s.next_record(NOW, false, &none).expect("closed hour");
    assert_eq!(b.timestamp(), h + 1200, "the earliest usage, not the top of the hour");
    let saved: State = serde_json::from_slice(&serde_json::to_vec(&s).expect("json")).expect("back");
    assert_eq!(saved.in_flight.as_ref().map(Bucket::timestamp), Some(h + 1200), "re-sent identically");
    s.roll_in_flight(NOW, true);
    s.add("r", hour_of(NOW) + 600, "", 2);
    let b = s.next_record(NOW, true, &none).expect("rolled");
    assert_eq!((b.hour, b.total(), b.timestamp()), (hour_of(NOW), 5, hour_of(NOW)), "rolled usage: the hour's start");
    s.return_in_flight();
    assert_eq!(s.pending[0].timestamp(), hour_of(NOW), "returned to its hour: the same date");
    let old = r#"{"offset":0,"pending":[{"dimension":"r","hour":3600,"usage":{"":1}}],"in_flight":null,"sent":[]}"#;
    let old: State = serde_json::from_str(old).expect("a state without dates");
    assert_eq!(old.pending[0].timestamp(), 3600, "no date known: the start of the hour");
}

#[test]
fn a_held_record_waits_and_the_others_go_on() {
    let mut s = State::default();
    let h = hour_of(NOW) - 2 * HOUR;
    s.add("a", h, "", 1);
    s.add("b", h, "", 2);
    s.add("a", h + HOUR, "", 3);
    let held = |d: &str, hour: u64| d == "a" && hour == h;
    let b = s.next_record(NOW, false, &held).expect("b");
    assert_eq!((b.dimension.as_str(), b.hour), ("b", h));
    s.accepted(None);
    let b = s.next_record(NOW, false, &held).expect("a, next hour");
    assert_eq!((b.dimension.as_str(), b.hour), ("a", h + HOUR));
    s.accepted(None);
    assert!(s.next_record(NOW, false, &held).is_none(), "only the held one is left");
    assert_eq!(s.unsent(), 1);
}

/// AWS refuses any record carrying one of `bad` (InvalidTagException): every bad tag set ends up in
/// the quarantine alone, every other unit is accepted, and between two steps forward (a record
/// accepted, a tag set quarantined) there are at most log2(tag sets) + 1 refusals.
#[test]
fn a_refused_tag_set_is_narrowed_down_and_quarantined_alone() {
    for n in 1..=40usize {
        for bad in [vec![0], vec![n - 1], vec![n / 2], (0..n).filter(|i| i % 7 == 3).collect::<Vec<_>>()] {
            let mut s = State::default();
            let h = hour_of(NOW) - 5 * HOUR;
            let name = |i: usize| if i == 0 { String::new() } else { format!("team=t{i:02}") };
            for i in 0..n {
                s.add("r", h + 60, &name(i), (i + 1) as u64);
            }
            let bad: Vec<String> = bad.into_iter().filter(|&i| i < n).map(name).collect();
            let (mut accepted, mut quarantined, mut refusals) = (0u64, Vec::new(), 0u32);
            let most = usize::BITS - n.leading_zeros() + 1;
            let mut now = NOW;
            // Each hour takes one accepted record: when the rest has rolled into the next hour, time
            // moves on to it.
            while s.unsent() > 0 {
                let Some(b) = s.next_record(now, true, &none) else {
                    now += HOUR;
                    assert!(now < NOW + 100 * HOUR, "n {n}, bad {bad:?}: usage never sent");
                    continue;
                };
                if b.usage.keys().any(|k| bad.contains(k)) {
                    refusals += 1;
                    if let Some(q) = s.refused_tag_set() {
                        quarantined.extend(q.usage.into_keys());
                        refusals = 0;
                    }
                } else {
                    accepted += b.total();
                    s.accepted(None);
                    refusals = 0;
                }
                assert!(refusals <= most, "n {n}, bad {bad:?}: {refusals} refusals in a row");
            }
            quarantined.sort();
            let mut want = bad.clone();
            want.sort();
            assert_eq!(quarantined, want, "n {n}");
            let bad_units: u64 = (0..n).filter(|&i| bad.contains(&name(i))).map(|i| (i + 1) as u64).sum();
            assert_eq!(accepted + bad_units, (n * (n + 1) / 2) as u64, "n {n}, bad {bad:?}: units lost");
        }
    }
}

#[test]
fn a_record_refused_as_a_whole_is_returned_whole() {
    let mut s = State::default();
    let h = hour_of(NOW) - HOUR;
    s.add("r", h, "", 1);
    s.add("r", h, "team=a", 2);
    s.next_record(NOW, false, &none).expect("record");
    let q = s.refused_record().expect("returned");
    assert_eq!(q.total(), 3);
    assert_eq!((s.unsent(), s.in_flight.is_none()), (0, true));
}

#[test]
fn a_request_keeps_its_client_token_and_every_other_request_or_spool_gets_another() {
    let mut s = State::default();
    assert!(s.ensure_salt().expect("salt"), "a fresh state draws its salt");
    assert!(!s.ensure_salt().expect("salt"), "and keeps it");
    assert_eq!(s.salt.len(), 32);
    let h = hour_of(NOW) - HOUR;
    s.add("r", h + 7, "", 5);
    let b = s.next_record(NOW, false, &none).expect("record");
    let token = s.client_token("code", &b);
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|c| c.is_ascii_hexdigit()), "{token}");
    // The state as a restart reads it back: the same request, the same token.
    let again: State = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("state");
    assert_eq!(again.client_token("code", &b), token);
    let mut more = b.clone();
    *more.usage.get_mut("").expect("untagged") += 1;
    assert_ne!(s.client_token("code", &more), token, "another quantity");
    let mut tagged = b.clone();
    tagged.usage.insert("team=a".into(), 1);
    assert_ne!(s.client_token("code", &tagged), token, "another allocation");
    assert_ne!(s.client_token("other", &b), token, "another product");
    let mut other_pod = State::default();
    other_pod.ensure_salt().expect("salt");
    assert_ne!(other_pod.client_token("code", &b), token, "another spool");
}
