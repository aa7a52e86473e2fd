//! Bench inputs shared by the benchmark binaries: real capture frames and a
//! synthetic 5 KB `state.apply` return, framed as a 3008 master sends them.
#![allow(dead_code)]

use std::path::Path;

use serde_json::json;

/// One bare-map frame around `body`, as Salt 3008 packs it.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x82, 0xa4, b'h', b'e', b'a', b'd', 0x80, 0xa4, b'b', b'o', b'd', b'y',
    ];
    let n = body.len();
    if n < 256 {
        f.extend_from_slice(&[0xc4, n as u8]);
    } else if n < 65_536 {
        f.push(0xc5);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0xc6);
        f.extend_from_slice(&(n as u32).to_be_bytes());
    }
    f.extend_from_slice(body);
    f
}

/// Every 3008.4 capture, concatenated: real events of every kind.
pub fn captures_stream() -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/3008.4");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// A `state.apply` job return of about 5 KB with `states` state results.
pub fn state_apply_frame(jid: u64, states: usize) -> Vec<u8> {
    let mut ret = serde_json::Map::new();
    for i in 0..states {
        ret.insert(
            format!("file_|-/etc/app/conf.d/{i:03}.conf_|-/etc/app/conf.d/{i:03}.conf_|-managed"),
            json!({
                "name": format!("/etc/app/conf.d/{i:03}.conf"),
                "changes": {},
                "result": true,
                "comment": format!("File /etc/app/conf.d/{i:03}.conf is in the correct state"),
                "__sls__": "app.config",
                "__run_num__": i,
                "start_time": "13:56:47.121718",
                "duration": 1.734,
                "__id__": format!("/etc/app/conf.d/{i:03}.conf"),
            }),
        );
    }
    let data = json!({
        "cmd": "_return", "id": "web-01.example.com", "success": true,
        "return": ret, "retcode": 0, "jid": format!("{jid:020}"), "fun": "state.apply",
        "fun_args": ["app"], "out": "highstate", "user": "root",
        "_stamp": "2026-11-26T13:56:47.121718+00:00", "ts": 1795701407u64,
    });
    let mut body = format!("salt/job/{jid:020}/ret/web-01.example.com\n\n").into_bytes();
    body.extend_from_slice(&rmp_serde::to_vec_named(&data).unwrap());
    frame(&body)
}

/// A small `test.ping`-style return of about 300 bytes.
pub fn small_return_frame(jid: u64) -> Vec<u8> {
    let data = json!({
        "cmd": "_return", "id": "web-01.example.com", "success": true, "return": true,
        "retcode": 0, "jid": format!("{jid:020}"), "fun": "test.ping", "fun_args": [],
        "user": "root", "_stamp": "2026-11-26T13:56:47.121718+00:00", "ts": 1795701407u64,
    });
    let mut body = format!("salt/job/{jid:020}/ret/web-01.example.com\n\n").into_bytes();
    body.extend_from_slice(&rmp_serde::to_vec_named(&data).unwrap());
    frame(&body)
}
