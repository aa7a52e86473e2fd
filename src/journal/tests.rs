use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use super::*;

fn settings(max_bytes: u64, when_full: WhenFull) -> JournalSettings {
    JournalSettings {
        max_bytes,
        when_full,
        fsync: Fsync::Never,
        ..Default::default()
    }
}

fn records(r: &mut JournalReader) -> (Vec<Vec<u8>>, u64) {
    let (mut out, mut lost) = (Vec::new(), 0);
    while let Some(item) = r.try_next() {
        match item {
            Item::Record(rec) => out.push(rec.payload),
            Item::Lost { bytes, .. } => lost += bytes,
        }
    }
    (out, lost)
}

#[tokio::test]
async fn what_is_appended_is_read_back_in_order_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(1 << 20, WhenFull::DropNewest);
    {
        let j = Journal::open(dir.path(), s.clone(), Arc::default()).unwrap();
        let mut w = j.writer().unwrap();
        for i in 0..100u32 {
            w.append(2, SystemTime::now(), &vec![i as u8; 1000])
                .unwrap();
        }
        let mut r = j.reader(j.start().record);
        let (got, lost) = records(&mut r);
        assert_eq!((got.len(), lost), (100, 0));
        assert_eq!(got[42], vec![42u8; 1000]);
        assert!(r.caught_up());
        let mut c = j.cursor();
        c.store(Position {
            record: r.position(),
            skip: 0,
        });
    }
    let segs = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(segs > 2, "{segs} files: 64 KiB segments");
    // A torn record at the end is cut off; the cursor is where it was left.
    let last = list(dir.path()).unwrap().pop().unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&last.path)
        .unwrap()
        .write_all(&[9, 0, 0])
        .unwrap();
    let j = Journal::open(dir.path(), s, Arc::default()).unwrap();
    let mut w = j.writer().unwrap();
    w.append(2, SystemTime::now(), b"after").unwrap();
    let mut r = j.reader(j.start().record);
    let (got, lost) = records(&mut r);
    assert_eq!(got, vec![b"after".to_vec()]);
    assert_eq!(lost, 0);
}

#[tokio::test]
async fn drop_newest_refuses_at_the_bound_counts_and_says_so_in_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(JournalStats::default());
    let j = Journal::open(
        dir.path(),
        settings(1 << 20, WhenFull::DropNewest),
        stats.clone(),
    )
    .unwrap();
    let mut w = j.writer().unwrap();
    let mut refused = 0;
    for _ in 0..200 {
        if w.append(2, SystemTime::now(), &[7u8; 10_000]).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0);
    assert_eq!(JournalStats::get(&stats.dropped_reads), refused);
    assert!(JournalStats::get(&stats.disk_bytes) <= 1 << 20);
    // The pipeline catches up: history goes first, then the next append says what was lost.
    let mut r = j.reader(0);
    let (got, _) = records(&mut r);
    j.cursor().store(Position::at(r.position()));
    w.append(2, SystemTime::now(), b"next").unwrap();
    let mut lost = None;
    while let Some(item) = r.try_next() {
        match item {
            Item::Lost { bytes, reads } => lost = Some((bytes, reads)),
            Item::Record(rec) => assert_eq!(rec.payload, b"next"),
        }
    }
    assert_eq!(lost, Some((refused * 10_000, refused)));
    assert_eq!(got.len() as u64 + refused, 200);
}

#[tokio::test]
async fn drop_oldest_deletes_unread_segments_and_the_reader_reports_the_hole() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(JournalStats::default());
    let j = Journal::open(
        dir.path(),
        settings(1 << 20, WhenFull::DropOldest),
        stats.clone(),
    )
    .unwrap();
    let mut w = j.writer().unwrap();
    for _ in 0..300 {
        w.append(2, SystemTime::now(), &[7u8; 10_000]).unwrap();
    }
    assert!(JournalStats::get(&stats.disk_bytes) <= 1 << 20);
    let mut r = j.reader(0);
    let (got, lost) = records(&mut r);
    assert!(lost > 0);
    assert_eq!(JournalStats::get(&stats.dropped_bytes), lost);
    assert_eq!(got.len() as u64 * 10_017 + lost, 300 * 10_017);
}

#[tokio::test]
async fn history_is_kept_within_the_bound_and_read_from_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(
        dir.path(),
        settings(1 << 20, WhenFull::DropNewest),
        Arc::default(),
    )
    .unwrap();
    let mut w = j.writer().unwrap();
    let mut c = j.cursor();
    for i in 0..500u32 {
        w.append(2, SystemTime::now(), &i.to_le_bytes().repeat(1000))
            .unwrap();
        // The pipeline keeps up: everything is history at once.
        c.store(Position::at((i as u64 + 1) * 4017));
    }
    let mut h = read_history(dir.path(), None).unwrap();
    let (got, lost) = records(&mut h);
    assert_eq!(lost, 0);
    assert!(got.len() > 200 && got.len() < 500, "{}", got.len());
    assert_eq!(got.last().unwrap()[..4], 499u32.to_le_bytes());
    let future = micros(SystemTime::now()) + 10_000_000;
    let mut h = read_history(dir.path(), Some(future)).unwrap();
    assert!(h.try_next().is_none());
}
