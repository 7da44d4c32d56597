use super::*;

/// The type field of the `i`th index entry (the preamble is 16 bytes).
fn kind_field(i: usize) -> std::ops::Range<usize> {
    16 + i * IndexEntry::SIZE + 4..16 + i * IndexEntry::SIZE + 8
}

#[test]
fn decodes_each_type() {
    let bytes = encode(
        None,
        vec![
            (1000, Value::String("kernel".into())),
            (1001, Value::StringArray(vec!["a".into(), "bc".into()])),
            (1002, Value::Int32(vec![1, 7])),
            (1003, Value::Int16(vec![9])),
            (1004, Value::Bin(vec![1, 2, 3])),
            (1005, Value::Int64(vec![1])),
            (1006, Value::I18nString(vec!["summary".into()])),
        ],
    );
    let h = Header::read(&mut &bytes[..]).unwrap();
    assert_eq!(h.string(1000), Some("kernel"));
    assert_eq!(h.strings(1001), vec!["a".to_string(), "bc".into()]);
    assert_eq!(h.ints(1002), vec![1, 7]);
    assert_eq!(h.int(1003), Some(9));
    assert_eq!(h.bin(1004), Some(&[1u8, 2, 3][..]));
    assert_eq!(h.int(1005), Some(1));
    assert_eq!(h.string(1006), Some("summary"));
    assert_eq!(h.len(), bytes.len());
}

#[test]
fn values_round_trip_aligned_and_in_tag_order() {
    let values = vec![
        (1030, Value::Int16(vec![0o100644, 0o100755])),
        (1000, Value::String("kmod-ceph".into())),
        (1028, Value::Int32(vec![5, 70_000])),
        (1005, Value::I18nString(vec!["text".into()])),
        (5000, Value::Int64(vec![u64::MAX])),
        (1004, Value::Char(b"ab".to_vec())),
        (1006, Value::Int8(vec![7])),
        (1007, Value::Null),
    ];
    let bytes = encode(None, values.clone());
    let h = Header::read(&mut &bytes[..]).unwrap();
    for (tag, value) in &values {
        assert_eq!(h.get(*tag), Some(value), "tag {tag}");
    }
    let index: Vec<IndexEntry> = bytes[16..16 + values.len() * IndexEntry::SIZE]
        .chunks_exact(IndexEntry::SIZE)
        .map(|e| IndexEntry::parse(e.try_into().unwrap()))
        .collect();
    assert!(index.windows(2).all(|w| w[0].tag < w[1].tag));
    for e in &index {
        assert_eq!(e.offset as usize % alignment(e.kind), 0, "{e:?}");
    }
}

#[test]
fn region_entry_comes_first_and_its_trailer_spans_the_index() {
    let bytes = encode(Some(63), vec![(1000, Value::String("n".into())), (1001, Value::String("v".into()))]);
    let h = Header::read(&mut &bytes[..]).unwrap();
    let first = IndexEntry::parse(bytes[16..32].try_into().unwrap());
    assert_eq!((first.tag, first.kind, first.count), (63, TYPE_BIN, 16));
    let trailer = IndexEntry::parse(h.bin(63).unwrap().try_into().unwrap());
    assert_eq!(trailer, IndexEntry { tag: 63, kind: TYPE_BIN, offset: -3 * 16, count: 16 });
    assert_eq!(h.string(1001), Some("v"));
}

#[test]
fn signature_padding_aligns_to_8() {
    assert_eq!([0, 1, 7, 8, 9].map(signature_padding), [0, 7, 1, 0, 7]);
}

#[test]
fn out_of_range_entries_are_errors() {
    let mut bytes = encode(None, vec![(1000, Value::Int32(vec![5]))]);
    // Count of 1000 int32s in a 4-byte store.
    bytes[16 + 12..16 + 16].copy_from_slice(&1000u32.to_be_bytes());
    assert!(Header::read(&mut &bytes[..]).unwrap_err().to_string().contains("run past"));
    let mut s = encode(None, vec![(1000, Value::Bin(b"no-nul".to_vec()))]);
    s[kind_field(0)].copy_from_slice(&TYPE_STRING.to_be_bytes());
    assert!(Header::read(&mut &s[..]).unwrap_err().to_string().contains("NUL"));
    let mut t = encode(None, vec![(1000, Value::Bin(vec![0]))]);
    t[kind_field(0)].copy_from_slice(&42u32.to_be_bytes());
    let err = Header::read(&mut &t[..]).unwrap_err();
    assert!(err.to_string().contains("unknown data type"), "{err}");
    assert!(matches!(err, HeaderError::Entry { tag: 1000, problem: ValueError::UnknownType { kind: 42 } }));
}

#[test]
fn hostile_sizes_are_refused_before_allocating() {
    let mut bytes = encode(None, vec![(1000, Value::String("x".into()))]);
    bytes[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(Header::read(&mut &bytes[..]).unwrap_err().to_string().contains("data store"));
    bytes[8..12].copy_from_slice(&0u32.to_be_bytes());
    assert!(Header::read(&mut &bytes[..]).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = encode(
        None,
        vec![(1000, Value::String("kernel".into())), (1001, Value::StringArray(vec!["a".into(), "bc".into()]))],
    );
    for cut in 0..bytes.len() {
        assert!(Header::read(&mut &bytes[..cut]).is_err(), "cut at {cut}");
    }
}
