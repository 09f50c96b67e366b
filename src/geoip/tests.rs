use super::writer::*;
use super::*;
use proptest::prelude::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn code(db: &GeoIp, address: &str) -> Option<String> {
    db.country(ip(address)).map(|c| c.to_string())
}

/// Three networks (two IPv4 under `::/96`, one IPv6) in an IPv6 tree.
fn three_networks(record_size: u16) -> Vec<u8> {
    let mut w = Writer::new(6, record_size);
    for (network, iso) in [
        ("192.0.2.0/24", "DE"),
        ("198.51.100.0/25", "FR"),
        ("2001:db8::/32", "JP"),
    ] {
        let at = w.data(&country_record(Some(iso), Some("US")));
        w.insert(network, at);
    }
    w.finish("GeoLite2-Country")
}

#[test]
fn addresses_in_each_network_have_its_country_and_others_none() {
    for record_size in [24, 28, 32] {
        let db = GeoIp::parse(three_networks(record_size)).unwrap();
        for (address, expected) in [
            ("192.0.2.1", Some("DE")),
            ("192.0.2.255", Some("DE")),
            ("::ffff:192.0.2.7", Some("DE")),
            ("192.0.3.1", None),
            ("198.51.100.5", Some("FR")),
            ("198.51.100.200", None),
            ("2001:db8::1", Some("JP")),
            ("2001:db8:ffff::1", Some("JP")),
            ("2001:db9::1", None),
            ("10.0.0.1", None),
        ] {
            assert_eq!(
                code(&db, address).as_deref(),
                expected,
                "{address} at {record_size}"
            );
        }
        assert_eq!(db.metadata().record_size, record_size);
    }
}

#[test]
fn an_ipv4_database_answers_ipv4_addresses_alone() {
    let mut w = Writer::new(4, 24);
    let at = w.data(&country_record(Some("NL"), None));
    w.insert("203.0.113.0/24", at);
    let db = GeoIp::parse(w.finish("DBIP-Country-Lite")).unwrap();
    assert_eq!(code(&db, "203.0.113.9").as_deref(), Some("NL"));
    assert_eq!(code(&db, "::ffff:203.0.113.9").as_deref(), Some("NL"));
    assert_eq!(code(&db, "203.0.114.9"), None);
    assert_eq!(code(&db, "2001:db8::1"), None);
}

#[test]
fn without_a_country_the_registered_country_answers() {
    let mut w = Writer::new(6, 28);
    let proxy = w.data(&country_record(None, Some("SE")));
    let both = w.data(&country_record(Some("IT"), Some("SE")));
    let neither = w.data(&country_record(None, None));
    let odd = w.data(&map(&[("country", map(&[("iso_code", text("eu"))]))]));
    w.insert("192.0.2.0/26", proxy);
    w.insert("192.0.2.64/26", both);
    w.insert("192.0.2.128/26", neither);
    w.insert("192.0.2.192/26", odd);
    let db = GeoIp::parse(w.finish("GeoIP2-City")).unwrap();
    assert_eq!(code(&db, "192.0.2.1").as_deref(), Some("SE"));
    assert_eq!(code(&db, "192.0.2.65").as_deref(), Some("IT"));
    assert_eq!(code(&db, "192.0.2.129"), None);
    // Not two capitals: not a country code.
    assert_eq!(code(&db, "192.0.2.193"), None);
}

#[test]
fn pointers_in_the_data_section_are_followed() {
    let mut w = Writer::new(6, 24);
    // One country map, and one key, written once and pointed at, as
    // MaxMind's writer shares what records repeat.
    let country = w.data(&map(&[("iso_code", text("CH"))]));
    let key = w.data(&text("country"));
    let mut record = control(MAP, 2);
    record.extend(text("city"));
    record.extend(map(&[("names", map(&[("en", text("Zurich"))]))]));
    record.extend(pointer(key));
    record.extend(pointer(country));
    let at = w.data(&record);
    w.insert("2001:db8:1::/48", at);
    let db = GeoIp::parse(w.finish("GeoIP2-City")).unwrap();
    assert_eq!(code(&db, "2001:db8:1::5").as_deref(), Some("CH"));
}

#[test]
fn pointers_of_every_size_reach_their_offset() {
    for offset in [5, 2_047, 2_048, 526_335, 526_336, 600_000] {
        let mut section = vec![0u8; offset];
        let field = text("XY");
        section.extend(&field);
        let p = pointer(offset);
        section.extend(&p);
        let (value, after) = Section::new(&section).value(offset + field.len()).unwrap();
        assert_eq!(value, Value::Text(b"XY"), "{offset}");
        assert_eq!(after, section.len());
    }
    // The 32-bit form, which the writer uses only past 128 MiB.
    let section = [0x38, 0, 0, 0, 5, 0x41, b'Q'];
    assert_eq!(
        Section::new(&section).value(0).unwrap(),
        (Value::Text(b"Q"), 5)
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_saying_why() {
    let good = three_networks(24);
    assert_eq!(
        GeoIp::parse(b"hello".to_vec()).unwrap_err(),
        GeoIpError::NoMetadata
    );
    assert_eq!(
        GeoIp::parse(Vec::new()).unwrap_err(),
        GeoIpError::NoMetadata
    );
    // The metadata cut short.
    let cut = good[..good.len() - 10].to_vec();
    assert!(GeoIp::parse(cut).is_err());
    // The tree cut short, the data section gone: the metadata says
    // more nodes than there are bytes before it.
    let marker = (good.windows(14))
        .rposition(|w| w == b"\xab\xcd\xefMaxMind.com")
        .unwrap();
    let headless = [&good[..20], &good[marker..]].concat();
    assert_eq!(GeoIp::parse(headless).unwrap_err(), GeoIpError::Truncated);
    let meta = |pairs: &[(&str, Vec<u8>)]| {
        let mut file = vec![0u8; 6 + 16];
        file.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
        file.extend(map(pairs));
        GeoIp::parse(file).unwrap_err()
    };
    let base = |record_size: u64, version: u64, nodes: u64| {
        vec![
            ("node_count", uint(UINT32, nodes)),
            ("record_size", uint(UINT16, record_size)),
            ("ip_version", uint(UINT16, 6)),
            ("database_type", text("x")),
            ("binary_format_major_version", uint(UINT16, version)),
            ("build_epoch", uint(UINT64, 1)),
        ]
    };
    assert!(matches!(meta(&base(20, 2, 1)), GeoIpError::Metadata(m) if m.contains("record_size")));
    assert!(matches!(meta(&base(24, 3, 1)), GeoIpError::Metadata(m) if m.contains("version 2")));
    assert!(matches!(meta(&base(24, 2, 0)), GeoIpError::Metadata(m) if m.contains("node_count")));
    // More nodes than the file holds.
    assert_eq!(meta(&base(24, 2, 1_000_000)), GeoIpError::Truncated);
    assert_eq!(
        meta(&base(32, 2, u64::from(u32::MAX))),
        GeoIpError::Truncated
    );
    let mut untyped = base(24, 2, 1);
    untyped.retain(|(k, _)| *k != "database_type");
    assert!(matches!(meta(&untyped), GeoIpError::Metadata(m) if m.contains("database_type")));
}

#[test]
fn a_record_that_cannot_be_read_answers_no_country() {
    let mut w = Writer::new(6, 24);
    // A pointer to a pointer, a map that says it holds more than there
    // is, a string running past the section, an unknown type.
    let target = w.data(&pointer(0));
    let chained = w.data(&map(&[("country", pointer(target))]));
    let short = w.data(&control(MAP, 20));
    let long = w.data(&[0x5f, 0xff, 0xff, 0xff]);
    let unknown = w.data(&[0x00, 0x09]);
    for (network, at) in [
        ("192.0.2.0/26", chained),
        ("192.0.2.64/26", short),
        ("192.0.2.128/26", long),
        ("192.0.2.192/26", unknown),
    ] {
        w.insert(network, at);
    }
    let db = GeoIp::parse(w.finish("broken")).unwrap();
    for address in ["192.0.2.1", "192.0.2.65", "192.0.2.129", "192.0.2.193"] {
        assert_eq!(code(&db, address), None, "{address}");
        assert!(db.country_or_error(ip(address)).is_err(), "{address}");
    }
}

#[test]
fn a_record_past_the_data_section_answers_no_country() {
    let mut file = three_networks(32);
    // The root's left record (32 bits) pointing far past everything.
    file[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    let db = GeoIp::parse(file).unwrap();
    assert_eq!(code(&db, "192.0.2.1"), None);
    assert!(db.country_or_error(ip("192.0.2.1")).is_err());
}

#[test]
fn a_28_bit_record_takes_its_top_bits_from_the_middle_byte() {
    let mut w = Writer::new(4, 28);
    let at = w.data(&country_record(Some("AT"), None));
    w.insert("192.0.2.0/24", at);
    let file = w.finish("x");
    let db = GeoIp::parse(file.clone()).unwrap();
    assert_eq!(code(&db, "192.0.2.1").as_deref(), Some("AT"));
    // A middle byte's high nibble set: the left record grows past every
    // node and the data, its right record stays.
    let mut high = file;
    high[3] |= 0xf0;
    let db = GeoIp::parse(high).unwrap();
    assert_eq!(code(&db, "192.0.2.1").as_deref(), Some("AT"));
    assert_eq!(code(&db, "10.0.0.1"), None);
}

#[test]
fn summary_names_type_date_and_nodes() {
    let db = GeoIp::parse(three_networks(24)).unwrap();
    let summary = db.summary();
    assert!(
        summary.starts_with("GeoLite2-Country, built 2023-11-14T22:13:20"),
        "{summary}"
    );
    assert!(summary.ends_with(&format!("IPv6 tree of {} nodes", db.metadata().node_count)));
}

proptest! {
    #[test]
    fn any_bytes_are_refused_or_looked_up_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        addresses in proptest::collection::vec(any::<u128>(), 1..8),
    ) {
        let mut file = bytes;
        // Half the time behind a marker, so the metadata is read.
        if file.first().is_some_and(|b| b % 2 == 0) {
            let cut = file.len() / 2;
            file.splice(cut..cut, b"\xab\xcd\xefMaxMind.com".iter().copied());
        }
        if let Ok(db) = GeoIp::parse(file) {
            for a in addresses {
                let _ = db.country(IpAddr::from(a.to_be_bytes()));
                let _ = db.country(IpAddr::from((a as u32).to_be_bytes()));
            }
        }
    }

    #[test]
    fn a_database_with_any_bytes_changed_never_panics(
        record_size in prop::sample::select(vec![24u16, 28, 32]),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        addresses in proptest::collection::vec(any::<u128>(), 1..8),
    ) {
        let mut file = three_networks(record_size);
        for (at, byte) in changes {
            let i = at.index(file.len());
            file[i] = byte;
        }
        if let Ok(db) = GeoIp::parse(file) {
            for a in addresses {
                let _ = db.country(IpAddr::from(a.to_be_bytes()));
                let _ = db.country(IpAddr::from((a as u32).to_be_bytes()));
                let _ = db.country(ip("192.0.2.1"));
            }
        }
    }
}
